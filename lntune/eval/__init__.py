"""Evaluation on the paper's five benchmarks (MME, VQAv2, COCO and Flickr30k captions, POPE).

lntune/eval/metrics/ holds the official scoring rules, one module per benchmark; `lntune score ...`
runs them on any tool's predictions and `lntune eval ...` generates answers with a model and scores them.
"""
