"""The training base of the torch estimators: one ``fit`` scaffolding for :class:`~infoclust.iic.IIC`,
:class:`~infoclust.dim.DeepInfoMax` and any new one (in the manner of scikit-learn's
``BaseMultilayerPerceptron``: one private ``_fit`` shared by several public classes).

:class:`_TorchEstimator` owns everything that is not an estimator's mathematics: the input
checks with the shape lock (:meth:`~_TorchEstimator._check_x`: after fitting, images must
have the training images' shape), the distributed set-up (:mod:`infoclust.distributed`: the
process group, the same parameters, data and initial networks on every rank), resume and
reset (a refit starts from scratch; ``resume=True`` continues from the ``checkpoint`` file,
bit-identically on the CPU), the epoch loop with its timer and progress bar, the checkpoint
written after every epoch (:mod:`infoclust.checkpoint`), and the history.

The history has one shape for every estimator: :attr:`history_` is a list of records, one
per recorded epoch, each a dict ``{"epoch": e, "seconds": s, ...}`` where ``s`` is the
training time up to the end of epoch ``e`` (cumulative; evaluation excluded), followed by
the estimator's own entries (and ``"callback"``, what ``fit``'s callback returned). Epoch 0,
when recorded, is the model before training. :attr:`train_seconds_` is the total training
time.

The contract: what a subclass writes
------------------------------------
A new estimator derives from ``_TorchEstimator`` (and scikit-learn's mixin, e.g.
``ClusterMixin``), takes at least the parameters ``epochs``, ``seed``, ``device``,
``verbose`` and ``checkpoint`` in ``__init__``, and writes only its mathematics:

``_check_params()``
    Check its parameters (call :meth:`~_TorchEstimator._check_training_params` for the
    shared ones); raise :class:`~infoclust.utils.ParameterError` naming the argument.
``_min_image_size()``
    The smallest image side it accepts (default 1).
``_check_fit_data(x, y)``
    Checks of the training set beyond the images (labels, batch size); returns ``y`` as
    the epochs and evaluations use it (default: ``y`` ignored, None).
``_build(x)``
    Create the networks, optimisers and own generators for images shaped like ``x``, drawing
    every initialisation from ``seed`` (e.g. under :func:`~infoclust.utils.forked_global_rng`);
    ``device_`` is set.
``_networks()``, ``_generators()``
    Its networks and its own :class:`torch.Generator` objects, by name (checked equal on
    every rank; the generators' states are kept by the checkpoint).
``_train_epoch(x, epoch, progress)``
    One epoch on the images ``x`` (on ``device_``); call ``progress()`` after each of the
    :meth:`~_TorchEstimator._steps_per_epoch` steps of the progress bar.
``_evaluate(x, y, epoch)``
    The history record of ``epoch`` (its entries after ``epoch`` and ``seconds``), or None
    to record nothing; epoch 0 is before training.
``_state()``, ``_load_state(state)``
    What a checkpoint keeps of it (networks, optimisers, running sums), and how to put it back.

Optional hooks: ``_fingerprint(x)`` (what a resume compares of the data, default the images),
``_random_scope()`` (a context around building and training, default none),
``_training_scope()`` (a context around the epoch loop, default none), ``_postfix(record)``
(the progress bar's numbers), and the class attributes ``_progress_name`` and
``_progress_unit``. The public ``fit`` calls :meth:`~_TorchEstimator._fit` and then sets its
own fitted attributes from the history. ``tests/test_training_base.py`` holds a complete
example: a linear autoencoder in a few lines that trains, checkpoints and resumes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from sklearn.base import BaseEstimator
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint
from . import distributed
from .utils import (
    ParameterError,
    check_bool,
    check_images,
    check_int,
    check_number,
    check_seed,
    resolve_device,
    timer,
)

__all__ = ["_TorchEstimator"]


class _TorchEstimator(BaseEstimator):
    """Base class of the torch estimators: the shared ``fit`` scaffolding (module docstring).

    Not for direct use: a subclass writes the hooks of the module docstring's contract.

    Attributes
    ----------
    device_ : torch.device
        Where the networks live.
    image_shape_ : tuple of int
        (C, H, W) of the training images; later inputs must have the same.
    history_ : list of dict
        One record per recorded epoch: ``epoch``, ``seconds`` (training time so far,
        cumulative), then the estimator's entries (module docstring).
    train_seconds_ : float
        Training time, evaluation excluded.
    """

    #: The progress bar's label and unit.
    _progress_name = "train"
    _progress_unit = "it"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # images (N, C, H, W)
        return tags

    # ------------------------------------------------------------ hooks (module docstring)

    def _check_params(self) -> None:
        raise NotImplementedError

    def _min_image_size(self) -> int:
        return 1

    def _check_fit_data(self, x: torch.Tensor, y: Any) -> Any:
        return None

    def _build(self, x: torch.Tensor) -> None:
        raise NotImplementedError

    def _networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def _generators(self) -> dict[str, torch.Generator]:
        return {}

    def _fingerprint(self, x: torch.Tensor) -> dict[str, str]:
        return checkpoint.data_fingerprint(x)

    def _random_scope(self) -> AbstractContextManager:
        return nullcontext()

    def _training_scope(self) -> AbstractContextManager:
        return nullcontext()

    def _steps_per_epoch(self, x: torch.Tensor) -> int:
        return 1

    def _train_epoch(self, x: torch.Tensor, epoch: int, progress: Callable[[], Any]) -> None:
        raise NotImplementedError

    def _evaluate(self, x: torch.Tensor, y: Any, epoch: int) -> dict[str, Any] | None:
        raise NotImplementedError

    def _postfix(self, record: dict[str, Any]) -> dict[str, str]:
        return {}

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ shared checks

    def _check_training_params(self) -> None:
        """The parameters every torch estimator has: ``epochs``, ``batch_size``, ``lr``, ``seed``..."""
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 2)
        check_number("lr", self.lr, 0.0, strict_low=True)
        check_seed("seed", self.seed)
        check_bool("verbose", self.verbose)
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path (str) or None, got {type(self.checkpoint).__name__}")

    def _check_x(self, x: Any, name: str = "x") -> torch.Tensor:
        """Images as a contiguous float32 tensor; once built, of the training images' shape (the lock)."""
        built = hasattr(self, "image_shape_")
        x = check_images(
            name,
            x,
            dtype=torch.float32,
            channels=self.image_shape_[0] if built else None,
            min_size=self._min_image_size(),
            square=True,
        )
        if built and tuple(x.shape[1:]) != self.image_shape_:
            raise ParameterError(
                f"{name} has images of shape {tuple(x.shape[1:])}, but this {type(self).__name__} was "
                f"fitted on {self.image_shape_}"
            )
        return x

    # ------------------------------------------------------------ set-up and training

    def _place(self) -> None:
        """Set ``device_`` from ``device`` (this process's own device under ``torch.distributed``)."""
        self.device_ = distributed.check_device(distributed.local_device(resolve_device(self.device)))

    def _initialise(self, x: torch.Tensor) -> None:
        """:meth:`_build` for images like ``x`` on ``device_``; check the ranks; lock the shape."""
        self._build(x)
        distributed.check_same_on_all_ranks(
            {f"the initial {name.replace('_', ' ')}": net for name, net in self._networks().items()}
        )
        self.history_: list[dict[str, Any]] = []
        self.image_shape_ = tuple(x.shape[1:])

    def _fit(
        self,
        x: Any,
        y: Any = None,
        *,
        resume: bool = False,
        callback: Callable[[Any, int], Any] | None = None,
    ) -> None:
        """Check, set up, resume or start, and run the epoch loop (module docstring).

        Parameters
        ----------
        x : array-like (N, C, H, H)
            The training images.
        y : array-like or None
            What :meth:`_check_fit_data` makes of it (labels for the history, or ignored).
        resume : bool
            Continue from the file ``checkpoint`` (if it exists; otherwise start afresh with
            a warning).
        callback : callable or None
            ``callback(model, epoch)`` after every recorded epoch; what it returns is the
            record's ``"callback"`` entry.
        """
        distributed.setup()
        distributed.check_same_on_all_ranks({**self.get_params(), "x": x, "y": y, "resume": resume})
        self._check_params()
        check_bool("resume", resume)
        if resume and self.checkpoint is None:
            raise ParameterError("resume=True needs checkpoint=PATH (the file to continue from)")
        for attr in [a for a in self.__dict__ if a.endswith("_") and not a.startswith("__")]:
            del self.__dict__[attr]  # a refit starts from scratch
        x = self._check_x(x)
        y = self._check_fit_data(x, y)
        self._place()
        with self._random_scope():
            self._initialise(x)
            data = self._fingerprint(x)  # a resume must be on the same data
            state = (
                checkpoint.read_training_state(
                    self.checkpoint,
                    distributed.describe_params(self.get_params()),
                    self.epochs,
                    estimator=type(self).__name__,
                    data=data,
                )
                if resume
                else None
            )
            with self._training_scope():
                self._epochs(x.to(self.device_), y, state, data, callback)

    def _epochs(
        self,
        x: torch.Tensor,
        y: Any,
        state: dict[str, Any] | None,
        data: dict[str, str],
        callback: Callable[[Any, int], Any] | None,
    ) -> None:
        """The epoch loop: :meth:`_train_epoch`, :meth:`_evaluate`, the history and the checkpoint."""
        if state is None:
            start, seconds = 1, 0.0
            self._record(self._evaluate(x, y, 0), 0, seconds, None)
        else:
            if not isinstance(state.get("history"), list) or "seconds" not in state:
                raise ParameterError(
                    f"checkpoint {self.checkpoint} was written by an older infoclust (another history "
                    f"format): start afresh without resume"
                )
            self._load_state(state)
            checkpoint.restore_rng_states(state["rng"], self._generators())
            self.history_ = state["history"]
            start, seconds = state["epoch"] + 1, state["seconds"]
        steps = self._steps_per_epoch(x)
        bar = tqdm(
            total=self.epochs * steps,
            initial=(start - 1) * steps,
            disable=not (self.verbose and distributed.is_main_process()),
            desc=self._progress_name,
            unit=self._progress_unit,
        )
        for epoch in range(start, self.epochs + 1):
            with timer() as t:
                self._train_epoch(x, epoch, bar.update)
            seconds = seconds + t["seconds"]
            record = self._record(self._evaluate(x, y, epoch), epoch, seconds, callback)
            if record is not None:
                bar.set_postfix(self._postfix(record))
            if self.checkpoint is not None:
                checkpoint.write_training_state(
                    self.checkpoint,
                    {
                        "estimator": type(self).__name__,
                        "data": data,
                        "params": distributed.describe_params(self.get_params()),
                        "epoch": epoch,
                        "seconds": seconds,
                        "history": self.history_,
                        **self._state(),
                    },
                    self._generators(),
                )
        bar.close()
        self.train_seconds_ = seconds

    def _record(
        self,
        entries: dict[str, Any] | None,
        epoch: int,
        seconds: float,
        callback: Callable[[Any, int], Any] | None,
    ) -> dict[str, Any] | None:
        """Append ``{"epoch", "seconds", **entries}`` (and the callback's value) to the history."""
        if entries is None:
            return None
        record = {"epoch": epoch, "seconds": seconds, **entries}
        self.history_.append(record)
        if callback is not None and epoch > 0:
            record["callback"] = callback(self, epoch)
        return record
