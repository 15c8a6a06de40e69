"""LLaVA data: chat templates, rendering with label masking, images, the dataset, collator, sampler and checks.

Import what you need from the sub-modules (e.g. `from lntune.data.dataset import LlavaDataset`); this
package file stays empty so `import lntune.data` does not pull in torch.
"""
