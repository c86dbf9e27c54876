"""One training loop for every method (docs/methods.md B.2 for the papers' protocols): `train(model, data, cfg)`.

- SGD with momentum / Nesterov, weight decay, step / cosine / constant LR, optional label smoothing.
- Masked ("sparse") training: gradients of pruned weights are zeroed before the step and pruned weights
  are zeroed after it, with one fused `torch._foreach_mul_` each (no Python loop per parameter), so
  pruned weights stay exactly zero under momentum and weight decay.
- Hooks for pruning during training (FGGP, GMP: `pruners.during.DuringTraining`): `before_step` after the
  backward pass and `after_step` after every optimizer step, with this step's gradients still in `.grad`.
- Evaluation every epoch (or every `eval_every` steps); `metrics.json` (final and best test accuracy, history)
  holds no timings, so the same config gives the same bytes; timings go to `timing.json`.
- A checkpoint (safetensors: weights, momentum buffers, mask, loop state) at every evaluation point; a rerun
  resumes from it and ends in the same bytes as an uninterrupted run (batches depend only on seed+epoch).
- CUDA: bf16 autocast, channels_last, each full batch's step replayed as one CUDA graph (same bytes as the
  eager step), optional torch.compile. CPU: plain fp32, bit-identical to the loop of earlier versions.

The implementation is the package `prunebench.library.training` (config, optim, step, trainer); this module is
its public face.
"""
from prunebench.library.training import (SCHEDULES, STEP_MODES, MaskedSGD, MaskEnforcer, Trainer, TrainConfig,
                                         evaluate, train)

__all__ = ["SCHEDULES", "STEP_MODES", "MaskedSGD", "MaskEnforcer", "Trainer", "TrainConfig", "evaluate", "train"]
