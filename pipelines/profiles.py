"""Compile profiles: the component image and each task's machine, chosen at compile time.

Standard library only; nothing here reads the environment. ``local`` reproduces the committed
``compiled/adapter_tuning.yaml`` that the local runner executes (every task a plain container,
no resources set). In the other profiles the tasks that load model weights
(``adaptune.runner.dag``: ``loads == MODEL``) get the profile's big machine, every other task a
small CPU one; in ``vertex-gpu`` the tuning task runs as a Vertex AI CustomJob on the chosen
accelerator (``--accelerator L4x1|L4x4|A100-80GBx1|H100x8``), one training process per GPU, on
one or more machines, and the evaluation task gets one GPU of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from components.images import IMAGE as CPU_IMAGE

CUDA_IMAGE = f"{CPU_IMAGE}-cuda"
STRATEGIES = ("STANDARD", "SPOT", "FLEX_START")
ANY_RESERVATION = "any"


@dataclass(frozen=True)
class Resources:
    """What one task's container asks for (empty: the platform's default).

    Attributes:
        cpu_limit: CPU limit (e.g. "8").
        memory_limit: Memory limit (e.g. "32G").
        accelerator_type: Accelerator (e.g. NVIDIA_L4); empty for none.
        accelerator_count: Number of accelerators.
    """

    cpu_limit: str = ""
    memory_limit: str = ""
    accelerator_type: str = ""
    accelerator_count: int = 0

    def __post_init__(self) -> None:
        if bool(self.accelerator_type) != (self.accelerator_count > 0):
            raise ValueError("give both accelerator_type and accelerator_count > 0, or neither")


@dataclass(frozen=True)
class Accelerator:
    """An accelerator choice of ``vertex-gpu``: the tuning machine and the evaluation machine.

    Attributes:
        name: As given to ``--accelerator`` (e.g. L4x4).
        type: Vertex AI accelerator type (e.g. NVIDIA_L4).
        count: Accelerators of the tuning machine (one training process each).
        machine_type: The tuning CustomJob's machine type, which holds ``count`` of them.
        eval_cpu: CPU limit of the evaluation task (one accelerator of ``type``).
        eval_memory: Memory limit of the evaluation task.
    """

    name: str
    type: str
    count: int
    machine_type: str
    eval_cpu: str
    eval_memory: str


ACCELERATORS = {
    a.name: a
    for a in (
        Accelerator("L4x1", "NVIDIA_L4", 1, "g2-standard-12", "12", "48G"),
        Accelerator("L4x4", "NVIDIA_L4", 4, "g2-standard-48", "12", "48G"),
        Accelerator("A100-80GBx1", "NVIDIA_A100_80GB", 1, "a2-ultragpu-1g", "12", "160G"),
        Accelerator("H100x8", "NVIDIA_H100_80GB", 8, "a3-highgpu-8g", "26", "220G"),
    )
}
DEFAULT_ACCELERATOR = "L4x1"


@dataclass(frozen=True)
class TuningJob:
    """The Vertex AI CustomJob the tuning task runs as (GCPC ``create_custom_training_job_...``).

    Attributes:
        machine_type: Machine type of every replica.
        accelerator_type: Accelerator of every replica.
        accelerator_count: Accelerators per replica (one training process each).
        replica_count: Machines; more than one join through torch's rendezvous.
        boot_disk_size_gb: Boot disk of every replica (the checkpoint is downloaded there).
        strategy: Scheduling: STANDARD (on demand), SPOT or FLEX_START.
        reservation: Empty for none, ``any`` for any matching reservation, else the full name
            of one reservation (projects/P/zones/Z/reservations/R).
    """

    machine_type: str
    accelerator_type: str
    accelerator_count: int
    replica_count: int = 1
    boot_disk_size_gb: int = 200
    strategy: str = "STANDARD"
    reservation: str = ""

    def __post_init__(self) -> None:
        if self.replica_count < 1:
            raise ValueError("replicas must be at least 1")
        if self.boot_disk_size_gb < 100:
            raise ValueError("boot disk must be at least 100 GB")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}, not {self.strategy!r}")

    def reservation_args(self) -> dict[str, object]:
        """The reservation arguments of GCPC's ``create_custom_training_job_from_component``."""
        if not self.reservation:
            return {}
        if self.reservation == ANY_RESERVATION:
            return {"reservation_affinity_type": "ANY_RESERVATION"}
        return {
            "reservation_affinity_type": "SPECIFIC_RESERVATION",
            "reservation_affinity_key": "compute.googleapis.com/reservation-name",
            "reservation_affinity_values": [self.reservation],
        }


SMALL = Resources(cpu_limit="4", memory_limit="16G")


@dataclass(frozen=True)
class Profile:
    """Where and on what the compiled pipeline's tasks run.

    Attributes:
        name: Profile name, as given to ``--profile``.
        image: Container image every component runs in.
        model: Resources of the tasks that load model weights (evaluation; tuning too unless
            ``tuning_job`` is set).
        small: Resources of every other task (tokenizer only, or no model at all).
        tuning_job: When set, the tuning task runs as this Vertex AI CustomJob.
    """

    name: str
    image: str
    model: Resources = field(default_factory=Resources)
    small: Resources = field(default_factory=Resources)
    tuning_job: TuningJob | None = None

    def __post_init__(self) -> None:
        if not self.image:
            raise ValueError(f"profile {self.name!r}: image must not be empty")

    def with_image(self, image: str | None) -> Profile:
        """Return this profile with another image (unchanged when ``image`` is empty)."""
        return replace(self, image=image) if image else self


def gpu_profile(
    accelerator: str = DEFAULT_ACCELERATOR,
    replicas: int = 1,
    strategy: str = "STANDARD",
    reservation: str = "",
    boot_disk_gb: int = 200,
) -> Profile:
    """The ``vertex-gpu`` profile on ``accelerator`` (a key of ``ACCELERATORS``).

    Raises:
        ValueError: On an unknown accelerator or a bad job setting.
    """
    try:
        chosen = ACCELERATORS[accelerator]
    except KeyError:
        raise ValueError(
            f"unknown accelerator {accelerator!r}; known: {sorted(ACCELERATORS)}"
        ) from None
    return Profile(
        name="vertex-gpu",
        image=CUDA_IMAGE,
        model=Resources(chosen.eval_cpu, chosen.eval_memory, chosen.type, 1),
        small=SMALL,
        tuning_job=TuningJob(
            machine_type=chosen.machine_type,
            accelerator_type=chosen.type,
            accelerator_count=chosen.count,
            replica_count=replicas,
            boot_disk_size_gb=boot_disk_gb,
            strategy=strategy,
            reservation=reservation,
        ),
    )


PROFILES = {
    "local": Profile(name="local", image=CPU_IMAGE),
    "vertex-cpu": Profile(
        name="vertex-cpu", image=CPU_IMAGE, model=Resources("8", "32G"), small=SMALL
    ),
    "vertex-gpu": gpu_profile(),
}
DEFAULT_PROFILE = "local"


def get_profile(name: str, image: str | None = None, **job: object) -> Profile:
    """Return the named profile, with ``image`` replacing its image when given.

    Args:
        name: A key of ``PROFILES``.
        image: Replaces the profile's image when given.
        **job: ``vertex-gpu`` only: ``gpu_profile``'s arguments (accelerator, replicas,
            strategy, reservation, boot_disk_gb); None values are left at their defaults.

    Raises:
        ValueError: If no profile has that name, or job settings are given for another.
    """
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {sorted(PROFILES)}") from None
    given = {key: value for key, value in job.items() if value is not None}
    if given:
        if profile.tuning_job is None:
            raise ValueError(
                f"profile {name!r} has no accelerator: {sorted(given)} need vertex-gpu"
            )
        profile = gpu_profile(**given)  # type: ignore[arg-type]
    return profile.with_image(image)
