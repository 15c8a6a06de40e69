"""The results table follows the paper's Table 1 layout: MME P/C, VQAv2, MSCOCO, Flickr30k, POPE acc
in the paper's popular/random/adversarial order, "-" for tasks not run."""

from lntune.eval.report import table1_cells, table1_markdown, write_report

# LayerNorm row of MM-Vicuna-7B in the paper: 723.2/253.2, 17.06, 80.89, 48.01, 76.1/81.1/70.8.
PAPER_LIKE = {
    "mme": {"perception": 723.2, "cognition": 253.2, "subtasks": {"existence": 190.0, "code_reasoning": 60.0}},
    "vqav2": {"accuracy": 17.06},
    "coco": {"CIDEr": 80.89},
    "flickr30k": {"CIDEr": 48.0149},
    "pope": {"random": {"accuracy": 81.1, "f1": 1.0}, "popular": {"accuracy": 76.1, "f1": 2.0},
             "adversarial": {"accuracy": 70.8333, "f1": 3.0}, "mean_f1": 2.0, "mean_accuracy": 76.0},
}


def test_cells_in_table1_order():
    assert table1_cells(PAPER_LIKE) == ["723.2/253.2", "17.06", "80.89", "48.01", "76.1/81.1/70.8"]
    assert table1_cells({"pope": {"random": {"accuracy": 50.0}}}) == ["-", "-", "-", "-", "-/50.0/-"]
    # The world's MME has perception subtasks only: its cognition total (0) is not a score.
    world_mme = {"perception": 200.0, "cognition": 0.0, "subtasks": {"existence": 100.0, "count": 100.0}}
    assert table1_cells({"mme": world_mme})[0] == "200.0/-"


def test_markdown_table(tmp_path):
    table = table1_markdown([("LayerNorm", PAPER_LIKE), ("none", {})], protocol="paper")
    lines = table.splitlines()
    assert lines[:4] == [
        "| Model | MME (P/C) | VQAv2 | MSCOCO | Flickr30k | POPE acc (pop/rand/adv) |",
        "|---|---:|---:|---:|---:|---:|",
        "| LayerNorm | 723.2/253.2 | 17.06 | 80.89 | 48.01 | 76.1/81.1/70.8 |",
        "| none | - | - | - | - | - |",
    ]
    assert lines[5].startswith("Protocol: paper.")
    path = write_report(tmp_path / "results.md", [("LayerNorm", PAPER_LIKE)])
    assert path.read_text().splitlines()[0] == "# Evaluation results"
    assert path.read_text().splitlines()[4] == lines[2]
