// Translation unit that owns the precompiled <torch/torch.h> shared by every torch layer.
