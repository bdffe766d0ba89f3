"""Unit 5: distilling a small character-level language model, offline.

* :mod:`kdcourse.lm.text`: the corpus (Python's own documentation, ``pydoc_data.topics``) and a
  character tokenizer;
* :mod:`kdcourse.lm.model`: a small causal Transformer (:class:`~kdcourse.lm.model.CausalLM`);
* :mod:`kdcourse.lm.training`: next-token training, token-level / sequence-level / on-policy distillation,
  sampling, held-out scores;
* :mod:`kdcourse.lm.teacher`: the teacher's seeded recipe and the checkpoint that ships with the package.

The token-level losses themselves are in :mod:`kdcourse.token_losses`. Import the submodules directly
(this package's ``__init__`` imports nothing, so ``import kdcourse.lm.text`` does not load torch).
"""
