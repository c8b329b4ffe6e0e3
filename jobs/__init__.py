"""The job recipes: `python jobs/<job>.py` or `taiyi-ray <job>` (installed as `taiyi_ray.jobs`)."""
