"""Batch evaluation: generation over evaluation sets (Ray Data actors or a Serve endpoint), parsing,
paper-faithful scoring, and a report beside the published scores.

Modules, one idea each: `scoring` (the metrics), `records_io` (gold/prediction files), `cli`
(`taiyi-ray eval score`), `sets` (catalogue entries -> items with prompts and gold answers), `oracle`
(gold-as-answer and seeded noise), `cache` (predictions keyed by model, prompt and settings), `actors`
and `endpoint` (the two generators), `finalise` (parse, write, score one set), `report` and `plot`
(results.json, report.md, scores.png), `job` (the `jobs/evaluate.py` handler).
"""
