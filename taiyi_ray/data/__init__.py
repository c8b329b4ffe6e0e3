"""Data: unified records, source-format converters, instructions, tokenisation, packing, shards, streaming."""
