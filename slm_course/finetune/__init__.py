"""Finetuning a pretrained model (chapters 7 and 8).

Submodules, imported on their own so that one chapter's module never loads another's:
``slm_course.finetune.lora`` (LoRA adapters, chapter 7), ``slm_course.finetune.classify``
(a spam classifier on the SMS collection, chapter 7), and chapter 8's instruction tuning,
preference tuning and merging modules.
"""
