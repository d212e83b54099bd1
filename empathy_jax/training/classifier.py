"""Training the metric classifiers here (`launch/train_classifier.py`) on the trainer core:
emotion and intent (RoBERTa sequence classifiers on EmpatheticIntents) and EPITOME's three
mechanisms (the bi-encoder with its rationale head on the EPITOME Reddit data), from random
weights.

A step is one jitted `(state, batch) -> (state, metrics)`: cross-entropy on the label (EPITOME:
on the level, plus `rationale_weight` x the token cross-entropy of the rationale head over the
response's tokens, as EPITOME trains), AdamW, the batch split over the mesh's batch axes and the
parameters replicated (the models are small). Every batch has the same static shape; the last
one of an epoch is filled with rows of weight 0. The best epoch is chosen by validation
accuracy; at the end the best model is scored on the held-out test split, and written in the
original's formats (`export`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import preflight, sharding
from empathy_jax.data import classifier_data as D
from empathy_jax.evaluation import classifier_models as CM
from empathy_jax.evaluation import encoders as E
from empathy_jax.evaluation import classifier_export
from empathy_jax.evaluation.classifier_models import task_labels
from empathy_jax.evaluation.classifiers import ROBERTA_TOKENIZER, _tokenizer
from empathy_jax.json_files import write_atomic
from empathy_jax.models import model_dir
from empathy_jax.settings import setting
from empathy_jax.training import core, loop
from empathy_jax.training.run_config import TrainRunConfig
from empathy_jax.training.state import TrainState, jit_update

CONFIG_FILE, WEIGHTS_FILE = "classifier.json", "model.safetensors"
TEST_METRICS = "test_metrics.json"  # the best model's held-out metrics, in the run folder


# Per task: what reaches the held-out targets within the CPU budget (docs/evaluation.md).
TASK_DEFAULTS = {"emotion": dict(max_epochs=4, batch_size=64, initial_lr=1e-3),
                 "intent": dict(max_epochs=3, batch_size=32, initial_lr=5e-4),
                 **{t: dict(max_epochs=2, batch_size=32, initial_lr=5e-4)
                    for t in D.EPITOME_TASKS}}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassifierConfig(TrainRunConfig):
  """Everything `train_classifier` needs."""

  task: str = setting(help="What to classify: emotion (32 labels) or intent (9) of an "
                      "utterance, or an EPITOME mechanism's level (0-2) of a response to a "
                      "seeker's post.", choices=D.TASKS)
  dataset_dir: str = setting(help="EmpatheticIntents folder (emotion, intent) or EPITOME "
                             "folder (epitome_*).")
  export_dir: str | None = setting(None, "Also write the best model in the original's formats "
                                   "here: emotion/ and intent/ as transformers classifier "
                                   "folders, epitome/finetuned_{ER,IP,EX}.pth (+ .safetensors).")
  export_pth: bool = setting(True, "With --export_dir, EPITOME: also write the original's "
                             "finetuned_*.pth in roberta-base's shapes (about 1 GB each), "
                             "which the original's class loads as it is.")
  max_epochs: int | None = setting(None, "Training epochs (default: per task, TASK_DEFAULTS).")
  batch_size: int | None = setting(None, "Global batch size (default: per task).")
  initial_lr: float | None = setting(None, "AdamW learning rate, warmed up then decayed "
                                     "linearly (default: per task).")
  warmup_steps: int = setting(50, "Linear warm-up steps.")
  clip_norm: float = setting(1.0, "Global gradient-norm clipping (0: off).")
  max_length: int = setting(64, "Tokens per text, specials included (EPITOME's 64).")
  hidden_size: int | None = setting(None, "Encoder width (default: 128; EPITOME: 768, the "
                                    "width its original class builds).")
  num_layers: int | None = setting(None, "Encoder layers (default: 2; EPITOME: 1 per "
                                   "encoder).")
  num_heads: int | None = setting(None, "Attention heads (default: width / 64).")
  intermediate_size: int | None = setting(None, "Feed-forward width (default: 2 x width; "
                                          "EPITOME: the width).")
  rationale_weight: float = setting(0.1, "EPITOME: weight of the rationale loss (EPITOME's "
                                    "lambda_RE).")
  max_train_examples: int | None = setting(None, "Use only the first N training rows.")
  log_interval: int = 20
  checkpoint_interval: int = 200

  MODEL_ROLE = None  # its model is built here, from random weights

  def complete(self) -> None:
    for name, value in TASK_DEFAULTS.get(self.task, {}).items():
      if getattr(self, name) is None:
        object.__setattr__(self, name, value)

  def check(self) -> None:
    if self.num_layers is not None and self.num_layers < 1:
      raise ValueError(f"--num_layers must be >= 1, got {self.num_layers}")
    if self.max_length < 8:
      raise ValueError(f"--max_length must be >= 8, got {self.max_length}")
    size = self.size()
    if size.hidden_size % size.num_heads:
      raise ValueError(f"--num_heads {size.num_heads} must divide the width "
                       f"{size.hidden_size}")
    if self.task in D.EPITOME_TASKS and size.hidden_size != CM.EPITOME_WIDTH:
      raise ValueError(f"--hidden_size: EPITOME models are {CM.EPITOME_WIDTH} wide (the "
                       f"original's class builds its heads that wide)")
    if self.task in D.EPITOME_TASKS and size.num_heads != CM.EPITOME_WIDTH // 64:
      raise ValueError(f"--num_heads: EPITOME models have {CM.EPITOME_WIDTH // 64} (as "
                       f"roberta-base, which EPITOME files are read as)")
    if self.task in D.EPITOME_TASKS and self.export_dir and self.export_pth and \
        not classifier_export.fits_roberta_base(size):
      raise ValueError("--export_pth: the original's class loads roberta-base's shapes (at "
                       "most 12 layers, feed-forward 3072, 512 tokens); this model does not "
                       "fit them (--noexport_pth writes the .safetensors only)")

  def size(self) -> CM.EncoderSize:
    epitome = self.task in D.EPITOME_TASKS
    width = self.hidden_size or (CM.EPITOME_WIDTH if epitome else 128)
    return CM.EncoderSize(width, self.num_layers or (1 if epitome else 2),
                          self.num_heads or max(1, width // 64),
                          self.intermediate_size or (width if epitome else 2 * width),
                          self.max_length)

  def check_inputs(self) -> None:
    for split in D.SPLITS:  # DatasetError lists every fault
      D.read_split(self.dataset_dir, split, self.task, task_labels(self.task))
    preflight.check_writable(self.output_dir)
    if self.export_dir:
      preflight.check_writable(self.export_dir)


# -- data ----------------------------------------------------------------------------------------


def encode_split(split: D.LabelledSplit, tokenizer, max_length: int) -> dict[str, np.ndarray]:
  """Token arrays padded to `max_length` (static shapes), labels, and for EPITOME the seeker
  posts' tokens and each response token's rationale label."""
  enc = tokenizer(split.texts, max_length=max_length, truncation=True, padding="max_length",
                  return_offsets_mapping=split.rationales is not None)
  out = {"ids": np.asarray(enc["input_ids"], np.int32),
         "mask": np.asarray(enc["attention_mask"], np.int32), "labels": split.labels}
  if split.seekers is not None:
    seek = tokenizer(split.seekers, max_length=max_length, truncation=True,
                     padding="max_length")
    out["seeker_ids"] = np.asarray(seek["input_ids"], np.int32)
    out["seeker_mask"] = np.asarray(seek["attention_mask"], np.int32)
    out["rationale"] = np.stack([
        D.rationale_token_labels(offsets, text, spans)
        for offsets, text, spans in zip(enc["offset_mapping"], split.texts, split.rationales)])
  return out


def batches(table: dict[str, np.ndarray], batch_size: int, order: np.ndarray):
  """Static-shape batches in `order`; the last one filled with rows of weight 0."""
  for start in range(0, len(order), batch_size):
    rows = order[start:start + batch_size]
    short = batch_size - len(rows)
    batch = {k: v[np.concatenate([rows, np.zeros(short, rows.dtype)])] for k, v in
             table.items()}
    batch["weight"] = np.concatenate([np.ones(len(rows)), np.zeros(short)]).astype(np.float32)
    yield batch


# -- the model's outputs and loss ------------------------------------------------------------


def outputs(params, batch, *, cfg: E.EncoderConfig):
  """(label logits [B, K], rationale logits [B, T, 2] or None)."""
  if "seeker_ids" in batch:
    return E.epitome_outputs(params, cfg, batch["seeker_ids"], batch["seeker_mask"],
                             batch["ids"], batch["mask"])
  return E.classify(params, cfg, batch["ids"], batch["mask"]), None


def _cross_entropy(logits, labels):
  return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], -1)[..., 0]


def loss_terms(params, batch, *, cfg, rationale_weight):
  """(loss, (label loss, rationale loss, label logits, rationale logits)), weighted means."""
  logits, rationale = outputs(params, batch, cfg=cfg)
  w = batch["weight"]
  label_loss = jnp.sum(w * _cross_entropy(logits, batch["labels"])) / jnp.maximum(w.sum(), 1)
  rationale_loss = jnp.float32(0.0)
  if rationale is not None:
    active = batch["mask"] * w[:, None]
    per = _cross_entropy(rationale, batch["rationale"])
    rationale_loss = jnp.sum(active * per) / jnp.maximum(active.sum(), 1)
  loss = label_loss + rationale_weight * rationale_loss
  return loss, (label_loss, rationale_loss, logits, rationale)


def train_step(state: TrainState, batch, *, cfg, tx, rationale_weight):
  grad_fn = jax.value_and_grad(functools.partial(loss_terms, cfg=cfg,
                                                 rationale_weight=rationale_weight),
                               has_aux=True)
  (loss, (label_loss, rationale_loss, _, _)), grads = grad_fn(state.params, batch)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = jax.tree.map(jnp.add, state.params, updates)
  return (state.replace(step=state.step + 1, params=params, opt_state=opt_state),
          {"loss": loss, "label_loss": label_loss, "rationale_loss": rationale_loss})


def eval_step(params, batch, *, cfg, rationale_weight):
  """Per batch: (loss sum, weight, predicted labels, predicted rationale tokens or zeros)."""
  _, (label_loss, _, logits, rationale) = loss_terms(params, batch, cfg=cfg,
                                                     rationale_weight=rationale_weight)
  picked = (jnp.zeros_like(batch["ids"]) if rationale is None
            else rationale.argmax(-1).astype(jnp.int32))
  return label_loss * batch["weight"].sum(), logits.argmax(-1), picked


def scores(pred: np.ndarray, truth: np.ndarray, num_labels: int) -> dict[str, float]:
  """Accuracy and macro-F1 (the mean over labels of per-label F1; a label never predicted
  nor present counts 0)."""
  f1s = []
  for c in range(num_labels):
    tp = float(((pred == c) & (truth == c)).sum())
    denom = float((pred == c).sum() + (truth == c).sum())
    f1s.append(2 * tp / denom if denom else 0.0)
  return {"accuracy": float((pred == truth).mean()), "macro_f1": float(np.mean(f1s))}


def rationale_f1(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
  """Token-level F1 of the rationale tokens over the responses' real tokens (EPITOME's
  T-F1)."""
  on = mask > 0
  tp = float(((pred == 1) & (truth == 1) & on).sum())
  denom = float(((pred == 1) & on).sum() + ((truth == 1) & on).sum())
  return 2 * tp / denom if denom else 0.0


# -- on the trainer core -------------------------------------------------------------------


class ClassifierTask(loop.Task):
  monitor, monitor_mode = "val_accuracy", "max"
  progress_keys = ("label_loss",)

  def __init__(self, cfg: ClassifierConfig, tables: dict, mesh, shardings, tx, lr_fn):
    self.cfg, self.tables, self.mesh = cfg, tables, mesh
    self.enc_cfg = cfg.size().encoder_config()
    self.labels = task_labels(cfg.task)
    self.lr_fn = jax.jit(lr_fn)
    self.steps_per_epoch = -(-len(tables["train"]["labels"]) // cfg.batch_size)
    keys = list(tables["train"]) + ["weight"]
    batch_shardings = {k: sharding.batch_sharding(mesh, 1 if k in ("labels", "weight") else 2)
                       for k in keys}
    self.batch_shardings = batch_shardings
    self._step = jit_update(functools.partial(train_step, cfg=self.enc_cfg, tx=tx,
                                              rationale_weight=cfg.rationale_weight),
                            shardings, mesh, in_shardings=(batch_shardings,))
    self._eval = jax.jit(functools.partial(eval_step, cfg=self.enc_cfg,
                                           rationale_weight=cfg.rationale_weight),
                         in_shardings=(shardings.params, batch_shardings),
                         out_shardings=sharding.replicated(mesh))  # every process reads all

  def _global(self, batch):
    return {k: sharding.from_host(v, self.batch_shardings[k]) for k, v in batch.items()}

  def batches(self, epoch, start_batch):
    n = len(self.tables["train"]["labels"])
    order = np.random.default_rng([self.cfg.seed, epoch]).permutation(n)
    for i, batch in enumerate(batches(self.tables["train"], self.cfg.batch_size, order)):
      if i >= start_batch:
        yield self._global(batch)

  def step(self, state, batch):
    return self._step(state, batch)

  def learning_rate(self, step):
    return float(self.lr_fn(step))

  def evaluate(self, params, split: str) -> dict[str, float]:
    table = self.tables[split]
    n = len(table["labels"])
    outs = jax.device_get([self._eval(params, self._global(b))
                           for b in batches(table, self.cfg.batch_size, np.arange(n))])
    preds = np.concatenate([o[1] for o in outs])[:n]
    result = {"loss": float(sum(o[0] for o in outs) / n),
              **scores(preds, table["labels"], len(self.labels))}
    if "rationale" in table:
      picked = np.concatenate([o[2] for o in outs])[:n]
      result["rationale_f1"] = rationale_f1(picked, table["rationale"], table["mask"])
    return result

  def validate(self, state):
    return {f"val_{k}": v for k, v in self.evaluate(state.params, "val").items()}

  def save_model(self, state, path, metadata):
    save(path, self.cfg, sharding.to_host(state.params), metadata)


def save(path: str, cfg: ClassifierConfig, params: dict, metadata: dict | None = None) -> None:
  """Our classifier folder: classifier.json (task, labels, sizes, tokenizer) and the weights
  as a PyTorch state dict in safetensors. Process 0 writes it beside the target and renames it
  over (a kill leaves the old folder or the new one, never half of one); every process waits."""
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

  path = os.path.abspath(path).rstrip("/")
  tmp = path + ".tmp"
  if jax.process_index() == 0:
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    size = cfg.size()
    info = {"task": cfg.task, "labels": list(task_labels(cfg.task)), "model_type": "roberta",
            **dataclasses.asdict(size), "tokenizer": ROBERTA_TOKENIZER,
            "metadata": metadata or {}}
    save_file(CM.to_pytorch(params), os.path.join(tmp, WEIGHTS_FILE))
    with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as f:  # last: complete
      json.dump(info, f, indent=2)
    model_dir.swap_in(tmp, path, CONFIG_FILE)
  sharding.barrier(f"classifier.save:{path}")


class ClassifierTraining(core.Algorithm):
  """A classifier for `core.run`: its labelled splits, random initial weights, the loss."""

  def prepare(self, cfg: ClassifierConfig, mesh, splits=D.SPLITS):
    core.check_batch_shards(cfg.batch_size, mesh)
    tokenizer = _tokenizer(ROBERTA_TOKENIZER)
    tables = {}
    for split in splits:
      data = D.read_split(cfg.dataset_dir, split, cfg.task, task_labels(cfg.task))
      table = encode_split(data, tokenizer, cfg.max_length)
      if split == "train" and cfg.max_train_examples:
        table = {k: v[:cfg.max_train_examples] for k, v in table.items()}
      tables[split] = table
    return tables

  def load(self, cfg):
    return None  # the model is built from random weights in `build`

  def build(self, cfg: ClassifierConfig, loaded, prepared, mesh) -> core.Setup:
    size = cfg.size()
    params = (CM.init_epitome(size, cfg.seed) if cfg.task in D.EPITOME_TASKS
              else CM.init_text_classifier(size, len(task_labels(cfg.task)), cfg.seed))
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    steps = -(-len(prepared["train"]["labels"]) // cfg.batch_size)
    state, shardings, tx, lr_fn = core.adamw_state(cfg, params, abstract, steps, mesh,
                                                   cfg.seed)
    task = ClassifierTask(cfg, prepared, mesh, shardings, tx, lr_fn)

    def finish(state, summary):
      del state  # the best epoch's model is scored and exported, not the last one's
      return {**summary, **held_out(cfg, summary["run_dir"], task)}
    return core.Setup(task, state, hparams={"parameters": int(sum(
        v.size for v in params.values()))}, finish=finish)


def held_out(cfg: ClassifierConfig, run_dir: str, task: ClassifierTask | None = None) -> dict:
  """The best model's metrics on the held-out test split (written to the run folder's
  test_metrics.json) and, with --export_dir, its export: {"test": ..., "export": folder}.
  Without `task` (a finished run reused), the test split is read and scored here."""
  if task is None:
    mesh = sharding.make_mesh(cfg.mesh)
    tables = {"train": {}, **ClassifierTraining().prepare(cfg, mesh, splits=("test",))}
    tables["train"] = tables["test"]
    task = ClassifierTask(cfg, tables, mesh, _eval_shardings(mesh), None, lambda step: 0.0)
  params = load_params(os.path.join(run_dir, "best"))
  test = task.evaluate(sharding.replicate(params, task.mesh), "test")
  if jax.process_index() == 0:
    write_atomic(os.path.join(run_dir, TEST_METRICS), test)
    if cfg.export_dir:
      classifier_export.export(cfg, params, cfg.export_dir, cfg.export_pth)
  sharding.barrier(f"classifier.held_out:{run_dir}")
  if not cfg.export_dir:
    return {"test": test}
  return {"test": test, "export": classifier_export.folder(cfg, cfg.export_dir)}


def _eval_shardings(mesh):
  """A train state's shardings where only `params` is read (scoring a saved model)."""
  replicated = sharding.replicated(mesh)
  return TrainState(step=replicated, params=replicated, opt_state=replicated, rng=replicated)


def load_params(path: str) -> dict:
  """The weights of our classifier folder, as `encoders` reads them."""
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel

  return {k: np.asarray(v) for k, v in
          E.prepare_params(load_file(os.path.join(path, WEIGHTS_FILE))).items()}


def train_classifier(cfg: ClassifierConfig) -> dict:
  """Trains one classifier; returns the loop's summary plus its held-out test metrics."""
  return core.run(cfg, ClassifierTraining())
