"""The paper's analyses (Sec. 5.2 and 5.3): layer-to-layer similarity of hidden states and LayerNorm
gradient statistics over training. Definitions and reproduction commands: docs/analysis.md.

    lntune analyze similarity --model runs/ln --compare runs/ft --data llava.json --images IMAGES --out analysis/
    lntune analyze gradients runs/ln --compare runs/ft --layers 11,21 --out analysis/

    from lntune.analysis import layer_similarity, plot_similarity, gradient_summary, plot_gradients
"""

from lntune.analysis.gradients import compare_summaries, gradient_summary, plot_gradients
from lntune.analysis.plots import plot_similarity
from lntune.analysis.similarity import layer_similarity

__all__ = ["layer_similarity", "plot_similarity", "gradient_summary", "compare_summaries", "plot_gradients"]
