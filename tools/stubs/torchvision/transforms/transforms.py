"""ToTensor / Resize / Normalize as torchvision >= 0.17 applies them to a CHW float tensor.

Only the paths sam2.utils.transforms.SAM2Transforms takes: ToTensor on an HWC uint8 array
or PIL image, Resize to an explicit (h, w) with bilinear + antialias (torchvision's default
since 0.17, via torch's interpolate, align_corners=False), Normalize by per-channel mean/std.
Resize and Normalize are TorchScript-able because SAM2Transforms scripts them.
"""
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class ToTensor:
    def __call__(self, pic):
        arr = np.asarray(pic)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        img = torch.from_numpy(np.ascontiguousarray(arr.transpose((2, 0, 1)))).contiguous()
        if img.dtype == torch.uint8:
            return img.to(dtype=torch.get_default_dtype()).div(255)
        return img


class Resize(torch.nn.Module):
    def __init__(self, size, interpolation=None, max_size=None, antialias=True):
        super().__init__()
        if isinstance(size, int) or len(size) != 2:
            raise NotImplementedError("stub Resize supports an explicit (h, w) size only")
        self.size: List[int] = [int(size[0]), int(size[1])]
        self.antialias: bool = True if antialias is None else bool(antialias)

    def forward(self, img: Tensor) -> Tensor:
        if not img.is_floating_point():
            raise NotImplementedError("stub Resize supports float tensors only")
        if img.shape[-2] == self.size[0] and img.shape[-1] == self.size[1]:
            return img  # torchvision returns the input unchanged at the target size
        squeeze = img.dim() == 3
        x = img.unsqueeze(0) if squeeze else img
        x = F.interpolate(x, size=[self.size[0], self.size[1]], mode="bilinear",
                          align_corners=False, antialias=self.antialias)
        return x.squeeze(0) if squeeze else x


class Normalize(torch.nn.Module):
    def __init__(self, mean: List[float], std: List[float], inplace: bool = False):
        super().__init__()
        self.mean: List[float] = [float(m) for m in mean]
        self.std: List[float] = [float(s) for s in std]

    def forward(self, tensor: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        return (tensor - mean) / std
