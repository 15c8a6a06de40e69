"""Result tables and plots shared by quickstart and reproduce: headline numbers, comparisons, bar charts.

`headline(metrics)` reduces one model's {task: metrics} to the numbers a person compares:
MME perception (and cognition where present), VQAv2 accuracy, COCO and Flickr30k CIDEr, POPE mean
accuracy and mean F1 over the splits present; `headline_intervals(metrics)` their 95% intervals, where the
metrics carry them. `paired_markdown(comparison, label)` shows a paired comparison (lntune/eval/compare.py)
as one table row of differences with their intervals. `grounding_markdown(result, name)` is the shuffled-image
control of a `lntune.analysis.grounding` result: the model's yes/no accuracy and ROC AUC with true images,
the row "<name>, shuffled images", and their difference with its interval.
"""

from pathlib import Path

from lntune.eval.report import table1_markdown, with_interval
from lntune.eval.scores import HEADLINE_SOURCES, Scores

HEADLINE_LABELS = {
    "mme_perception": "MME perception",
    "mme_cognition": "MME cognition",
    "vqav2": "VQAv2 acc",
    "coco": "MSCOCO CIDEr",
    "flickr30k": "Flickr30k CIDEr",
    "pope_accuracy": "POPE acc (mean)",
    "pope_f1": "POPE F1 (mean)",
}


def headline(metrics: dict) -> dict:
    return Scores.of(metrics).headline()


def headline_intervals(metrics: dict) -> dict:
    """{headline key: [low, high]} for the headline numbers whose metrics carry a 95% interval."""
    return Scores.of(metrics).headline_intervals()


def comparison_markdown(models: dict, baseline: str, chance: dict | None = None) -> str:
    """A table of headline numbers per model, with the change against `baseline` and chance where defined."""
    heads = {name: headline(m) for name, m in models.items()}
    intervals = {name: headline_intervals(m) for name, m in models.items()}
    keys = [k for k in HEADLINE_LABELS if any(k in h for h in heads.values())]
    lines = ["| metric | " + " | ".join(heads) + (" | chance |" if chance else " |"),
             "|---|" + "---:|" * (len(heads) + (1 if chance else 0))]
    for key in keys:
        cells = []
        for name, h in heads.items():
            value = h.get(key)
            delta = "" if name == baseline or value is None or key not in heads[baseline] else \
                f" ({value - heads[baseline][key]:+.1f})"
            cells.append("-" if value is None else with_interval(value, intervals[name].get(key)) + delta)
        row = f"| {HEADLINE_LABELS[key]} | " + " | ".join(cells)
        if chance:
            row += f" | {chance[key]:.1f}" if key in chance else " | -"
        lines.append(row + " |")
    return "\n".join(lines) + "\n"


def paired_markdown(comparison: dict, label: str) -> str:
    """One table row, `label`, of the paired differences of `compare_eval_dirs` with their 95% intervals,
    and a row of their p-values."""
    keys = [k for k, (task, metric) in HEADLINE_SOURCES.items() if metric in comparison.get(task, {})]
    cells = [comparison[HEADLINE_SOURCES[k][0]][HEADLINE_SOURCES[k][1]] for k in keys]
    lines = ["| | " + " | ".join(HEADLINE_LABELS[k] for k in keys) + " |", "|---|" + "---:|" * len(keys),
             f"| {label} | " + " | ".join(f"{d['difference']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"
                                         for d in cells) + " |",
             "| p-value | " + " | ".join(f"{d['p_value']:.3f}" for d in cells) + " |"]
    return "\n".join(lines) + "\n"


def significant(comparison: dict) -> tuple[list[str], list[str]]:
    """The headline keys whose paired 95% interval lies above 0 / below 0: (better, worse)."""
    better, worse = [], []
    for key, (task, metric) in HEADLINE_SOURCES.items():
        d = comparison.get(task, {}).get(metric)
        if d and d["ci95"][0] > 0:
            better.append(key)
        elif d and d["ci95"][1] < 0:
            worse.append(key)
    return better, worse


def wins(models: dict, candidate: str, baseline: str) -> tuple[int, int]:
    """(metrics where `candidate` beats `baseline`, metrics compared)."""
    a, b = headline(models[candidate]), headline(models[baseline])
    shared = [k for k in a if k in b]
    return sum(a[k] > b[k] for k in shared), len(shared)


def plot_model_comparison(models: dict, chance: dict, out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = {name: headline(m) for name, m in models.items()}
    keys = [k for k in HEADLINE_LABELS if any(k in h for h in heads.values())]
    fig, axes = plt.subplots(1, len(keys), figsize=(2.2 * len(keys), 3.2))
    for ax, key in zip(axes if len(keys) > 1 else [axes], keys):
        names = list(heads)
        ax.bar(range(len(names)), [heads[n].get(key, 0) for n in names], color=[f"C{i}" for i in range(len(names))])
        if key in chance:
            ax.axhline(chance[key], color="gray", ls="--", lw=1, label="chance")
        ax.set_title(HEADLINE_LABELS[key], fontsize=9)
        ax.set_xticks(range(len(names)), [n.split(" ")[0] for n in names], rotation=30, fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


# (column, group of a grounding result, metric): what the shuffled-image control table shows.
GROUNDING_COLUMNS = (("POPE acc", "pope", "accuracy"), ("MME existence acc", "mme/existence", "accuracy"),
                     ("MME color acc", "mme/color", "accuracy"), ("POPE AUC", "pope", "auc"),
                     ("MME AUC", "mme", "auc"))


def grounding_markdown(result: dict, name: str) -> str:
    """Rows `name` (true images), "`name`, shuffled images" and the difference, for the groups present."""
    groups = result["groups"]
    columns = [c for c in GROUNDING_COLUMNS if c[1] in groups]
    if not columns:
        return ""

    def cell(group, side, metric):
        value = groups[group][side][metric]
        return "-" if value is None else (f"{value:.1f}" if metric == "accuracy" else f"{value:.3f}")

    def difference(group, metric):
        d = groups[group]["difference"]
        value, interval = d[metric], d.get(f"{metric}_interval")
        if value is None:
            return "-"
        fmt = "{:+.1f}" if metric == "accuracy" else "{:+.3f}"
        return fmt.format(value) + ("" if not interval else f" [{fmt.format(interval[0])}, {fmt.format(interval[1])}]")

    lines = ["| model | " + " | ".join(c[0] for c in columns) + " |", "|---|" + "---:|" * len(columns),
             f"| {name} | " + " | ".join(cell(g, "true", m) for _, g, m in columns) + " |",
             f"| {name}, shuffled images | " + " | ".join(cell(g, "shuffled", m) for _, g, m in columns) + " |",
             "| difference (95% interval) | " + " | ".join(difference(g, m) for _, g, m in columns) + " |"]
    counted = dict.fromkeys(g for _, g, _ in columns)
    n = ", ".join(f"{g} {groups[g]['true']['n']}" for g in counted)
    return ("\n".join(lines) + "\n\nFrom the yes-vs-no score log P(yes) - log P(no) at the first answer token "
            "(score > 0 answers yes), with each question's own image and with images shuffled among the questions "
            f"of the same benchmark (seed {result['seed']}); questions: {n}; intervals: paired bootstrap over "
            "questions. See docs/analysis.md.\n")


def write_quickstart_report(results: dict, path: Path) -> str:
    models = results["models"]
    baseline, tuned = list(models)[0], list(models)[-1]
    won, compared = wins(models, tuned, baseline)
    head_tuned, chance = headline(models[tuned]), results["chance"]
    above_chance = [k for k in chance if k in head_tuned and head_tuned[k] > chance[k]]
    text = (f"# lntune quickstart ({results['preset']})\n\n"
            f"SmolLM2-135M-Instruct + the world's vision tower ({_tower_origin(results.get('tower'))}); "
            f"world `{results['world']}`; {_precision(results.get('dtype'))}.\n\n"
            "## Table 1 layout\n\n" + table1_markdown(list(models.items()), protocol="official") +
            "\n## Headline numbers (change against the stage-1 model)\n\n" +
            comparison_markdown(models, baseline, chance) +
            "\nValues are followed by their 95% bootstrap interval over the questions (images for captions).\n" +
            f"\n{tuned} beats {baseline} on {won} of {compared} headline metrics, and is above chance on "
            f"{len(above_chance)} of {len(chance)} metrics that have one ({', '.join(above_chance) or 'none'}).\n\n"
            + _paired_section(results.get("comparison"), f"{tuned} − {baseline.split(' ')[0]}"))
    if results.get("grounding"):
        name = results["grounding"].get("model", tuned)
        text += (f"## Does {name} answer from the image? (shuffled-image control)\n\n"
                 + grounding_markdown(results["grounding"], name) + "\n")
    text += ("## Time (seconds)\n\n" + "\n".join(f"- {k}: {v}" for k, v in results["timings_s"].items()) + "\n")
    Path(path).write_text(text)
    return text


def _precision(dtype: dict | None) -> str:
    dtype = dtype or {}
    train = ("trained with frozen weights in bf16 and trained tensors in fp32 under bf16 autocast"
             if dtype.get("train") == "bfloat16" else "trained in float32")
    return f"{train}, evaluated in {dtype.get('eval', 'float32')}"


def _tower_origin(tower: dict | None) -> str:
    if not tower:
        return "trained on the world"
    how = "shipped with lntune, pretrained on this world" if tower.get("shipped") else "trained on the world here"
    return f"{how}: `{tower['path']}`"


def _paired_section(comparison: dict | None, label: str) -> str:
    if not comparison:
        return ""
    better, worse = (", ".join(HEADLINE_LABELS[k] for k in keys) or "none" for keys in significant(comparison))
    return ("## Paired difference (same questions, paired bootstrap)\n\n" + paired_markdown(comparison, label) +
            f"\nThe 95% interval lies above 0 for: {better}; below 0 for: {worse}; the other differences are "
            "within noise.\n\n")
