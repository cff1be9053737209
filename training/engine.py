"""The training loop: split, (optionally) cache frozen features, train, checkpoint, export.

Transfer models keep their first ``freeze`` feature modules frozen. Their activations do not
change during training, so they are computed once for a few augmented views of every training
photo and cached; each epoch then trains only the last blocks and the head, on a randomly chosen
view per photo. On two CPU cores this is what makes fine-tuning affordable (docs/models.md).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from phototagger.errors import ConfigError
from phototagger.imaging import PREPROCESSING, PreprocessSpec, load_input, normalised_crop
from phototagger.model import select_device
from training import nets
from training.data import (
    DataSet,
    DecodedImages,
    negative_folders,
    scan_folder,
    split_digest,
    split_negatives,
    stratified_split,
)
from training.data import train_transform as make_train_transform


@dataclass
class TrainConfig:
    data: Path
    arch: str = "efficientnet_lite0"
    out: Path = Path("runs/model.pt")
    run_dir: Path | None = None
    gazetteer: Path | None = None
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    img_size: int | None = None
    freeze: int | None = None
    views: int = 3
    val_fraction: float = 0.15
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    threads: int | None = None
    limit_per_class: int | None = None
    negatives: Path | None = None
    negatives_held_out: float = 0.5
    outlier_weight: float = 0.5
    cache_dir: Path = Path("data-cache")
    resume: Path | None = None
    command: str = ""

    def __post_init__(self) -> None:
        self.arch = nets.canonical(self.arch)
        if self.arch not in nets.DEFAULT_FREEZE:
            raise ConfigError(f"unknown architecture {self.arch!r}: choose from {nets.ARCHS}")
        self.data, self.out, self.cache_dir = Path(self.data), Path(self.out), Path(self.cache_dir)
        for name in ("gazetteer", "negatives", "resume"):  # from the CLI or a checkpoint's JSON
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)))
        self.run_dir = Path(self.run_dir) if self.run_dir else Path("runs") / self.out.stem
        self.freeze = nets.DEFAULT_FREEZE[self.arch] if self.freeze is None else self.freeze
        if self.epochs < 1 or self.batch_size < 1 or self.views < 1:
            raise ConfigError("--epochs, --batch-size and --views must be at least 1")
        if not 0 < self.val_fraction < 1:
            raise ConfigError("--val-fraction must be between 0 and 1")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def class_weights(counts: list[int]) -> torch.Tensor:
    """Inverse square-root frequency, mean 1: rare landmarks weigh more, without drowning others."""
    weights = torch.tensor([1.0 / math.sqrt(max(c, 1)) for c in counts])
    return weights * len(counts) / weights.sum()


def warmup_cosine(optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up from 1 % then cosine decay to zero, stepped every batch."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return 0.01 + 0.99 * step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and batch-norm parameters, as is usual for AdamW."""
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


class Split:
    """Train and validation samples of a data set, fixed by seed and fraction."""

    def __init__(self, dataset: DataSet, val_fraction: float, seed: int,
                 limit_per_class: int | None = None):
        samples = dataset.samples
        if limit_per_class:  # tiny subsets for tests and quick trials
            samples = []
            for label in range(len(dataset.classes)):
                samples += [s for s in dataset.samples if s[1] == label][:limit_per_class]
        train, val = stratified_split(samples, val_fraction, seed)
        self.train = [samples[i] for i in train]
        self.val = [samples[i] for i in val]
        self.digest = split_digest(samples, val, dataset.root)
        self.counts = [0] * len(dataset.classes)
        for _, label in self.train:
            self.counts[label] += 1


def eval_tensors(samples, spec: PreprocessSpec, progress: bool = True) -> TensorDataset:
    """Validation inputs made by phototagger's own preprocessing: what ``scan`` will feed."""
    inputs, labels = [], []
    for path, label in tqdm(samples, desc="val images", disable=not progress, leave=False):
        inputs.append(load_input(path, spec)[0])
        labels.append(label)
    return TensorDataset(torch.stack(inputs), torch.tensor(labels))


@torch.no_grad()
def run_prefix(prefix: nn.Module, inputs: torch.Tensor, batch_size: int,
               device: torch.device) -> torch.Tensor:
    """Frozen activations, stored in half precision (half the memory, ample for features)."""
    outputs = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size].to(device, memory_format=torch.channels_last)
        outputs.append(prefix(batch).to("cpu", torch.float16))
    return torch.cat(outputs)


def feature_cache(config: TrainConfig, samples: list, digest: str, spec: PreprocessSpec,
                  prefix: nn.Module, device: torch.device) -> torch.Tensor:
    """Frozen-prefix activations of ``views`` augmented views per training photo (view 0 clean).

    Kept on disk under ``cache_dir``, keyed by everything that changes them, so a resumed or
    repeated run does not pay for them again.
    """
    key = json.dumps([config.arch, config.freeze, config.views, config.seed, spec.to_dict(),
                      PREPROCESSING, digest, [str(p) for p, _ in samples]])
    path = config.cache_dir / f"{config.arch}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    if path.is_file():
        return torch.load(path)
    images = DecodedImages(samples, spec.resize, progress=_bar("decode train"))
    clean = functools.partial(normalised_crop, spec=spec)  # exactly what scan feeds the model
    augment = make_train_transform(spec.input_size, spec.mean, spec.std)
    views = []
    for view in range(config.views):
        transform = clean if view == 0 else augment
        batch_out = []
        for start in tqdm(range(0, len(images), config.batch_size), desc=f"cache view {view}",
                          leave=False):
            chunk = images.images[start:start + config.batch_size]
            batch = torch.stack([transform(image) for image in chunk])
            batch_out.append(run_prefix(prefix, batch, config.batch_size, device))
        views.append(torch.cat(batch_out))
    cache = torch.stack(views)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cache, path)
    return cache


def _bar(desc: str):
    return lambda items: tqdm(items, desc=desc, leave=False)


class NegativePool:
    """Photos with no landmark, drawn at random for the outlier-exposure part of each batch."""

    def __init__(self, data: torch.Tensor | DecodedImages, cached: bool):
        self.data, self.cached = data, cached

    def __len__(self) -> int:
        return self.data.shape[1] if self.cached else len(self.data)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(self), (count,), generator=generator)
        if self.cached:
            views = torch.randint(self.data.shape[0], (count,), generator=generator)
            return self.data[views, index].float()
        return torch.stack([self.data[i][0] for i in index.tolist()])


def outlier_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to the uniform distribution: a photo of no landmark should favour none."""
    return -torch.log_softmax(logits, dim=-1).mean()


class CachedViews(torch.utils.data.Dataset):
    """One of the cached views of each training photo, chosen afresh every epoch."""

    def __init__(self, cache: torch.Tensor, labels: list[int]):
        self.cache, self.labels = cache, labels
        self.choice = torch.zeros(len(labels), dtype=torch.long)

    def pick(self, generator: torch.Generator) -> None:
        self.choice = torch.randint(len(self.cache), (len(self.labels),), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.cache[self.choice[index], index].float(), self.labels[index]


def accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[-1])
    return (logits.topk(k, dim=-1).indices == labels[:, None]).any(-1).float().mean().item()


@torch.no_grad()
def predict(module: nn.Module, loader: DataLoader, device: torch.device) -> tuple[torch.Tensor,
                                                                                  torch.Tensor]:
    module.eval()
    logits, labels = [], []
    for inputs, target in loader:
        inputs = inputs.to(device, torch.float32, memory_format=torch.channels_last)
        logits.append(module(inputs).float().cpu())
        labels.append(target)
    return torch.cat(logits), torch.cat(labels)


class Trainer:
    """Everything one training run needs; ``fit`` runs it, ``export`` writes the model file."""

    def __init__(self, config: TrainConfig):
        self.config = config
        seed_everything(config.seed)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = select_device(config.device)
        self.dataset = scan_folder(config.data, config.gazetteer)
        self.split = Split(self.dataset, config.val_fraction, config.seed, config.limit_per_class)
        self.spec = nets.preprocess(config.arch, config.img_size)
        self.negatives_train: list[Path] = []
        if config.negatives:
            self.negatives_train, _ = split_negatives(config.negatives, config.negatives_held_out,
                                                      config.seed)
        self.model = nets.build(config.arch, len(self.dataset.classes)).to(self.device)
        features = self.model.features
        if not 0 <= config.freeze < len(features):
            raise ConfigError(f"--freeze must be below {len(features)} for {config.arch}")
        self.prefix = features[:config.freeze].eval()
        for param in self.prefix.parameters():
            param.requires_grad_(False)
        self.suffix = nn.Sequential(*features[config.freeze:], self.model.pool, nn.Flatten(1),
                                    self.model.classifier)
        self.epoch = 0
        self.history: list[dict] = []
        self.seconds = 0.0

    # data ------------------------------------------------------------------------------------
    def _loaders(self) -> tuple[torch.utils.data.Dataset, DataLoader, NegativePool | None]:
        config, spec = self.config, self.spec
        val = eval_tensors(self.split.val, spec)
        if config.freeze:
            val = TensorDataset(run_prefix(self.prefix, val.tensors[0], config.batch_size,
                                           self.device), val.tensors[1])
            cache = feature_cache(config, self.split.train, self.split.digest, spec, self.prefix,
                                  self.device)
            train = CachedViews(cache, [label for _, label in self.split.train])
        else:
            train = DecodedImages(self.split.train, spec.resize,
                                  make_train_transform(spec.input_size, spec.mean, spec.std),
                                  progress=_bar("decode train"))
            if train.skipped:
                tqdm.write(f"skipped {len(train.skipped)} undecodable photos")
        return train, DataLoader(val, batch_size=config.batch_size), self._negatives()

    def _negatives(self) -> NegativePool | None:
        config, spec = self.config, self.spec
        if not config.negatives or config.outlier_weight <= 0:
            return None
        samples = [(path, -1) for path in self.negatives_train]
        if config.freeze:
            cache = feature_cache(config, samples, "negatives", spec, self.prefix, self.device)
            return NegativePool(cache, cached=True)
        transform = make_train_transform(spec.input_size, spec.mean, spec.std)
        return NegativePool(DecodedImages(samples, spec.resize, transform), cached=False)

    # checkpoints -----------------------------------------------------------------------------
    def checkpoint(self, optimizer, scheduler) -> Path:
        path = self.config.run_dir / "checkpoint.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "config": {k: (str(v) if isinstance(v, Path) else v)
                       for k, v in asdict(self.config).items()},
            "classes": [c.to_dict() for c in self.dataset.classes],
            "preprocess": self.spec.to_dict(),
            "epoch": self.epoch, "history": self.history, "seconds": self.seconds,
            "model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
        }
        torch.save(state, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        return path

    def _restore(self, optimizer, scheduler) -> None:
        state = torch.load(self.config.resume, map_location=self.device, weights_only=False)
        if state["classes"] != [c.to_dict() for c in self.dataset.classes]:
            raise ConfigError(
                f"{self.config.resume} was trained on other classes than {self.config.data}"
            )
        self.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.epoch, self.history, self.seconds = state["epoch"], state["history"], state["seconds"]

    # the loop --------------------------------------------------------------------------------
    def fit(self) -> list[dict]:
        config, device = self.config, self.device
        tqdm.write(self.describe())
        train, val_loader, negatives = self._loaders()
        full, rest = divmod(len(train), config.batch_size)
        drop_last = rest == 1  # batch norm cannot train on a batch of one photo
        steps_per_epoch = full + (rest > 1)
        optimizer = torch.optim.AdamW(param_groups(self.suffix, config.weight_decay), lr=config.lr)
        scheduler = warmup_cosine(optimizer, round(config.warmup_epochs * steps_per_epoch),
                                  config.epochs * steps_per_epoch)
        if config.resume:
            self._restore(optimizer, scheduler)
        weights = class_weights(self.split.counts).to(device)
        on_cuda = device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=on_cuda)
        csv_path = config.run_dir / "metrics.csv"
        config.run_dir.mkdir(parents=True, exist_ok=True)
        while self.epoch < config.epochs:
            started = time.time()
            generator = torch.Generator().manual_seed(config.seed * 1000 + self.epoch)
            if isinstance(train, CachedViews):
                train.pick(generator)
            loader = DataLoader(train, batch_size=config.batch_size, shuffle=True,
                                generator=generator, num_workers=config.workers,
                                drop_last=drop_last)
            self.suffix.train()
            total_loss = correct = seen = 0
            bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{config.epochs}", leave=False)
            for inputs, labels in bar:
                labels = labels.to(device)
                if negatives is not None:  # a third as many photos of no landmark
                    inputs = torch.cat([inputs, negatives.sample(len(labels) // 3 + 1, generator)])
                inputs = inputs.to(device, torch.float32, memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.float16, enabled=on_cuda):
                    logits = self.suffix(inputs).float()
                    loss = F.cross_entropy(logits[:len(labels)], labels, weight=weights,
                                           label_smoothing=config.label_smoothing)
                    if negatives is not None:
                        loss = loss + config.outlier_weight * outlier_loss(logits[len(labels):])
                logits = logits[:len(labels)]
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                total_loss += loss.item() * len(labels)
                correct += (logits.argmax(-1) == labels).sum().item()
                seen += len(labels)
                bar.set_postfix(loss=f"{total_loss / seen:.3f}")
            val_logits, val_labels = predict(self.suffix, val_loader, device)
            self.epoch += 1
            self.seconds += time.time() - started
            row = {
                "epoch": self.epoch, "lr": scheduler.get_last_lr()[0],
                "train_loss": total_loss / max(seen, 1), "train_top1": correct / max(seen, 1),
                "val_loss": F.cross_entropy(val_logits, val_labels).item(),
                "val_top1": accuracy(val_logits, val_labels, 1),
                "val_top5": accuracy(val_logits, val_labels, 5),
                "seconds": round(time.time() - started, 1),
            }
            self.history.append(row)
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in row.items()))
            self.checkpoint(optimizer, scheduler)
            _write_metrics(csv_path, self.history)
        return self.history

    def describe(self) -> str:
        """The split, said once at the start of a run (it is also stored in the model file)."""
        config, dataset = self.config, self.dataset
        text = (f"{len(dataset.classes)} landmarks, {len(self.split.train)} training and "
                f"{len(self.split.val)} validation photos (split seed {config.seed}, "
                f"{config.val_fraction:.0%} of each landmark held out)")
        if self.negatives_train:
            text += f"; {len(self.negatives_train)} negatives trained on"
        if dataset.unmatched:
            text += f"; not in the gazetteer (no location): {', '.join(dataset.unmatched)}"
        return text

    def training_meta(self) -> dict:
        config = self.config
        return {
            **self.dataset.summary(),
            "data": config.data.name if config.data.name != "train" else
            f"{config.data.parent.name}/{config.data.name}",
            "train_images": len(self.split.train), "val_images": len(self.split.val),
            "split_seed": config.seed, "val_fraction": config.val_fraction,
            "split_digest": self.split.digest, "limit_per_class": config.limit_per_class,
            "epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
            "freeze": config.freeze, "views": config.views, "label_smoothing":
            config.label_smoothing, "seconds": round(self.seconds), "command": config.command,
            "negatives": str(config.negatives) if config.negatives else None,
            "negatives_trained_on": len(self.negatives_train),
            "negatives_folders": negative_folders(config.negatives) if config.negatives else None,
            "negatives_held_out": config.negatives_held_out if config.negatives else None,
            "outlier_weight": config.outlier_weight if config.negatives else None,
        }

    def export(self, path: Path | None = None) -> Path:
        from training.export import export_model, model_meta

        last = self.history[-1] if self.history else {}
        meta = model_meta(self.config.arch, self.dataset.classes, self.spec, self.training_meta(),
                          {"val_top1": last.get("val_top1"), "val_top5": last.get("val_top5")})
        path = Path(path or self.config.out)
        export_model(self.model.cpu().eval(), meta, path)
        self.model.to(self.device)
        return path


def _write_metrics(csv_path: Path, history: list[dict]) -> None:
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    csv_path.with_suffix(".json").write_text(json.dumps(history, indent=1))


def train(config: TrainConfig) -> Path:
    """Train, export to ``config.out``, return its path."""
    trainer = Trainer(config)
    trainer.fit()
    return trainer.export()
