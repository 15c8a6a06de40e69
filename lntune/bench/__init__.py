"""`lntune bench`: time, memory and FLOP floor of one training step per strategy, lntune against Hugging Face
`Trainer` + peft. Figures and how to read them: docs/benchmarks.md.

    runner.py       run_bench: every row in its own process, rounds, pooled timings, ratios, table, chart
    worker.py       one row in its own process (python -m lntune.bench.worker JOB.json ROW.json)
    rows.py         the row implementations by name: lntune_row.py (Trainer.step), hf_peft_row.py
    inputs.py       the run config, model and batches every row shares
    measure.py      timestamps, peak memory, trainable counts, the row dict
    presets.py      what `--preset NAME` measures (a recipe)
    flops.py        the FLOP floor of a step
    matmul.py       the machine's matmul rate on the model's shapes
"""
