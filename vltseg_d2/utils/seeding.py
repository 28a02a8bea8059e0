"""Seeding the CPU's random generator without torch.manual_seed's cost on the CPU."""

import torch


def seed_torch(seed: int, device_type: str = "cpu") -> None:
    """``torch.manual_seed(seed)`` for draws on ``device_type``.

    ``torch.manual_seed`` also seeds CUDA, XPU and MTIA. Until such a device is initialised it queues
    each of those calls with a formatted stack trace: ~1 ms per call on the CPU, and the queue grows
    by one entry per call (2,000 in a demo run's data worker, which seeds every sample). A process
    drawing on the CPU only (data workers, CPU training) gets the same numbers from seeding the CPU
    generator alone; other devices get ``torch.manual_seed``.
    """
    if device_type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)
