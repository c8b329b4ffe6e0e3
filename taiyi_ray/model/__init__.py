"""Model building and loading, shared by training, export, serving and evaluation."""
