"""Every field an experiment has, with the paper's LeNet-300-100/MNIST values as defaults.

Presets (one small file per network) start from `get_config()` and change what differs. Every
field can be overridden from the command line (`--config.train.steps=2000`). Sentinels instead of
None keep fields overridable: 0 / -1 / '' mean "unset" where noted.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "lenet_mnist"
  # Modules to import first: they register your scores, modes or models (e.g. ('mypkg.scores',)).
  c.imports = ()
  # A registered model (ltjax.models.names()) or your own network: 'package.module:Factory', a
  # linen Module class or a function returning a Module or an (init, apply) pair.
  c.model = "lenet_300_100"
  c.model_kwargs = ml_collections.ConfigDict()  # e.g. {'dropout': 0.5} or {'width': 2}
  # Overrides of the inferred layer roles, 'pattern=role' over '/'-joined parameter paths, e.g.
  # ('head/kernel=fixed', 'Dense_0/kernel=output'); roles: conv, fc, output, fixed.
  c.roles = ()

  # A prepared TFDS image dataset ('mnist', 'fashion_mnist', 'cifar10', 'mnist:3.0.1', ...), 'synthetic', or
  # 'package.module:function' returning ((train_images, train_labels), (test_images, test_labels)).
  c.dataset = "mnist"
  c.data_dir = ""                 # '' -> $LTJAX_DATA_DIR, else ~/tensorflow_datasets
  c.validation_size = 5000        # held out of the training split
  c.normalization = "dataset"     # per-channel mean/std of the training examples

  c.train = ml_collections.ConfigDict()
  c.train.optimizer = "adam"
  c.train.lr = 1.2e-3
  c.train.momentum = 0.9
  c.train.nesterov = False
  c.train.weight_decay = 0.0
  c.train.warmup_steps = 0
  c.train.milestones = (0,)       # steps where lr is multiplied by `decay`; (0,) means none
  c.train.decay = 0.1
  c.train.batch_size = 60
  c.train.steps = 50_000
  c.train.eval_every = 100
  c.train.eval_batch_size = 1000
  # float32 matmuls at full precision everywhere: GPUs (TF32) and TPUs (bf16 passes) would
  # otherwise round them, and a reproduction should not depend on the device. 'default' is faster
  # there; on CPU all three are the same.
  c.train.matmul_precision = "highest"

  c.prune = ml_collections.ConfigDict()
  # 'iterative' (IMP), 'oneshot' (prune the trained dense net to each of `densities`), 'at_init'
  # (prune theta_0 to each of `densities` with a criterion of ltjax.methods.at_init: snip, grasp, synflow),
  # 'early_bird' (the magnitude mask once it settles during dense training, You et al. 2020)
  # or 'given' (at each of `densities`, the tickets' masks another run found: `masks_from`)
  c.prune.mode = "iterative"
  c.prune.rounds = 16             # iterative: pruning rounds after the dense round 0
  c.prune.densities = (0.5, 0.2, 0.1)  # oneshot: target fractions of prunable weights remaining
  c.prune.conv_rate = 0.0
  c.prune.fc_rate = 0.2
  c.prune.output_rate = 0.1
  # 'auto': the score's published method's (layerwise for the paper's magnitude IMP; global for
  # SNIP, GraSP and SynFlow, as in their papers); or 'layerwise', or 'global' (one pool for every
  # layer with a non-zero rate). A run's config.json records what 'auto' resolved to.
  c.prune.scope = "auto"
  c.prune.score = "magnitude"     # ltjax.core.scores.names(), yours too (ltjax.register_score)
  c.prune.rewind_step = 0         # 0: reset to init (theta_0); k > 0: rewind to theta_k
  c.prune.reset = "start"         # 'start': theta_0 or theta_k as above; 'none': keep training the
                                  # pruned trained weights (fine-tuning)
  c.prune.early_bird_threshold = 0.1  # early_bird: masks "settled" below this Hamming distance ...
  c.prune.early_bird_patience = 5     # ... for this many checks (one per train.eval_every steps)
  # Sparse training ('gmp': Zhu & Gupta's gradual magnitude pruning; 'set', 'rigl': dynamic sparse
  # training; 'static': their random start, never updated), one pruned round per density:
  c.prune.distribution = "auto"   # over layers: 'uniform', 'er', 'erk', 'per_role'; auto: the paper's
  c.prune.sparsity_type = "unstructured"  # gmp: also 'block:HxW', 'units' (MLPs; density = units kept)
  c.prune.update_every = 0        # ΔT: steps between mask updates; 0: the method's own (gmp, set, rigl: 100; ste: 1)
  c.prune.update_begin = 0        # the first update's step (gmp: sparsity 0 until then)
  c.prune.update_end = 0          # the last update's step; 0: 3/4 of train.steps (RigL's T_end)
  c.prune.drop_fraction = 0.3     # set, rigl: the fraction dropped and regrown at the first update
  c.prune.masks_from = ""         # given: the workdir whose tickets' masks each of `densities` trains

  c.trials = 5                    # independent seeds, each its own lineage of masks
  # also 'inverted' (one-shot modes), 'twin' (stability; 'twin_reinit', 'twin_random_mask': of those
  # controls), 'scratch' (Scratch-B); '' ignored; () none
  c.controls = ("reinit", "random_mask")
  c.reinit_draws = 1              # random reinitializations per trial (the paper: 3)
  c.seed = 0

  c.stability = ml_collections.ConfigDict()
  c.stability.points = 11         # with the 'twin' control: test error at this many points on the path
  c.stability.twins = 1           # twins per ticket (and per twin_reinit / twin_random_mask control):
                                  # data orders besides the ticket's own
  c.scratch = ml_collections.ConfigDict()
  c.scratch.lr_scale = 1.0        # the 'scratch' control's learning rate, relative to train.lr
  c.scratch.steps_scale = 2.0     # and its budget, relative to train.steps (Scratch-B: up to 2x);
                                  # train.warmup_steps and train.milestones stretch with it

  c.execution = ml_collections.ConfigDict()
  # Devices for the ticket axis: 'auto' (every device, tickets first; the batch is split too when
  # there are fewer tickets than devices), 'single' (today's one-device program), 'T' or 'TxB'
  # (T devices over tickets x B devices splitting each ticket's batch; T*B = all devices).
  c.execution.mesh = "auto"
  # CPU cores as JAX devices: -1 auto (one per core, up to 8), n exactly n. Fixed at JAX start.
  c.execution.cpu_devices = -1
  # How each device runs its tickets: -1 auto; 0 vmap all; 1 one at a time; b: chunks of b vmapped
  # tickets. Chunks bound activation memory (only one chunk is in flight) in one program.
  c.execution.ticket_batch = -1
  # Unroll all device loops (-1 auto: conv nets on CPU, where XLA's in-loop convs are ~70x slower).
  c.execution.unroll = -1
  # JAX's persistent compilation cache: a rerun loads compiled programs instead of compiling.
  c.execution.compilation_cache = True
  c.execution.compilation_cache_dir = ""  # '' -> $LTJAX_CACHE_DIR, else ~/.cache/ltjax/jax
  # Eval intervals per compiled call: between calls the host logs progress and may checkpoint.
  c.execution.intervals_per_call = 10
  c.execution.checkpoint_every = 0  # steps between mid-round checkpoints (0 = per round only)
  # Also a mid-round checkpoint once this much wall time has passed since the last save (0 = off),
  # so a killed run loses minutes, not a round. When it saves never changes what the run computes.
  c.execution.checkpoint_minutes = 10.0
  return c
