"""What the loop trains: a model card's G and D (architectures, wrappers, initialisation), their
optimisers and memory layout, and what keeps a model's seeds from training together or its step
from being replayed as a CUDA graph."""

from __future__ import annotations

import json

import torch
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import LOSSES, OPTIMIZERS
from ganbench.core.hooks import ProgressAware, WithEmbeddings
from ganbench.data import dataset_classes, get_dataset
from ganbench.losses import Loss
from ganbench.nets import NETS, initialise
from ganbench.nets.layers import ConditionalGenerator, WrappedDiscriminator, apply_spectral_norm
from ganbench.nets.translation import CycleCritics, CycleTranslator, PairedTranslator
from ganbench.spec.protocol import NetSpec, OptimSpec, RunSpec


def num_classes(spec: RunSpec) -> int:
    """Classes of a conditional model's dataset (0 for an unconditional model)."""
    if spec.model.conditional is None:
        return 0
    return dataset_classes(spec.protocol.data.dataset)


def _discriminator_context(spec: RunSpec, classes: int) -> dict:
    """The input D's architecture is built for: the images, plus label planes or a label embedding."""
    m, d, cond = spec.model, spec.protocol.data, spec.model.conditional
    ctx = dict(z_dim=m.z_dim, channels=d.channels, image_size=d.image_size)
    if cond is not None and cond.d_input == "planes":
        ctx["channels"] = d.channels + classes
    elif cond is not None and cond.d_input == "embedding":
        if not NETS.get_or_raise(m.discriminator.arch).flat_input:
            flat = ", ".join(name for name, arch in sorted(NETS.items()) if arch.flat_input)
            raise GanbenchError(f"conditional d_input 'embedding' needs a flat-input discriminator ({flat}); "
                                f"{m.discriminator.arch} takes images: use d_input 'planes' or 'projection'")
        ctx.update(channels=d.channels * max(d.image_size, 1) ** 2 + classes, image_size=0)
    return ctx


def init_name(net: NetSpec) -> str:
    """The initialisation of a card's network: the card's override, else its architecture's own."""
    return net.init or NETS.get_or_raise(net.arch).init


def _translation_models(spec: RunSpec, kind: str) -> tuple[nn.Module, nn.Module]:
    """An image-to-image model's G and D (``ganbench.nets.translation``): pix2pix ("paired") translates
    sources into targets and judges (source, image) pairs; CycleGAN ("cycle") has a generator and a
    discriminator per direction."""
    m, d = spec.model, spec.protocol.data
    G, D = NETS.get_or_raise(m.generator.arch), NETS.get_or_raise(m.discriminator.arch)
    src = source_channels(spec)

    def gen(channels: int, source: int) -> nn.Module:
        return G.build(G.options(m.generator.options), z_dim=m.z_dim, channels=channels, image_size=d.image_size,
                       source_channels=source)

    def critic(channels: int, source: int) -> nn.Module:
        return D.build(D.options(m.discriminator.options), z_dim=m.z_dim, channels=channels, image_size=d.image_size,
                       source_channels=source)

    if kind == "paired":
        return PairedTranslator(gen(d.channels, src)), critic(d.channels, src)
    return CycleTranslator(gen(d.channels, src), gen(src, d.channels)), CycleCritics(critic(src, 0), critic(d.channels, 0))


def source_channels(spec: RunSpec) -> int:
    """Channels of an image-to-image dataset's source images (its targets' channels when it does not say)."""
    return getattr(get_dataset(spec.protocol.data.dataset), "source_channels", spec.protocol.data.channels)


def build_models(spec: RunSpec, device: torch.device, gen: torch.Generator) -> tuple[nn.Module, nn.Module]:
    """G and D of a model card: the architectures, wrapped with what the card adds (conditioning,
    minibatch-std, spectral norm; see ``ganbench.nets.layers``), initialised from ``gen`` (G first,
    then D, then the label embeddings) as each architecture or the card says (``ganbench.nets.inits``).
    An image-to-image loss (``Loss.translation``) makes them translators and PatchGANs instead."""
    m, d, t, cond = spec.model, spec.protocol.data, spec.model.tricks, spec.model.conditional
    translation = LOSSES.get_or_raise(m.loss.name).build.translation
    if translation:
        netG, netD = _translation_models(spec, translation)
        initialise(netG, init_name(m.generator), gen)
        initialise(netD, init_name(m.discriminator), gen)
        return netG.to(device), netD.to(device)
    k = num_classes(spec)
    G, D = NETS.get_or_raise(m.generator.arch), NETS.get_or_raise(m.discriminator.arch)
    netG = G.build(G.options(m.generator.options), z_dim=m.z_dim + k, channels=d.channels, image_size=d.image_size)
    netD = D.build(D.options(m.discriminator.options), **_discriminator_context(spec, k))
    if cond is not None:
        netG = ConditionalGenerator(netG, k, cond.g_input)
    if cond is not None or t.minibatch_std:
        netD = WrappedDiscriminator(netD, k, cond.d_input if cond else None, t.minibatch_std)
    initialise(netG, init_name(m.generator), gen)
    initialise(netD, init_name(m.discriminator), gen)
    for net in (netG, netD):
        if isinstance(net, WithEmbeddings):
            net.init_embeddings(gen)
    if t.spectral_norm:
        apply_spectral_norm(netD)
    return netG.to(device), netD.to(device)


OPTIMIZERS.register("adam", lambda params, s: torch.optim.Adam(params, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay))
OPTIMIZERS.register("rmsprop", lambda params, s: torch.optim.RMSprop(params, lr=s.lr, weight_decay=s.weight_decay))


def make_optimizer(params, spec: OptimSpec) -> torch.optim.Optimizer:
    return OPTIMIZERS.get_or_raise(spec.name)(params, spec)  # a card is validated on load; a spec built in code is not


def fast_layout(G: nn.Module, D: nn.Module, loss: Loss) -> None:
    """The fast path's memory layout: 4-D weights (and so activations) channels_last, which oneDNN's
    convolutions on CPU and cuDNN's on recent GPUs run faster; values are unchanged. D keeps the default
    layout when every D step takes a double backward (``loss.double_backward``: WGAN-GP, R1 on every
    step): the double backward of a convolution copies its input transposed (batch <-> channels), a
    strided gather in channels_last (5 ms against 0.6 ms for 128x64x14x14 on 2 CPU cores), and WGAN-GP's
    fast path ran at 0.95x the plain path's images/s with D channels_last, 0.99x without
    (benchmarks/bench_train.py --model wgan-gp)."""
    G.to(memory_format=torch.channels_last)
    if not loss.double_backward:
        D.to(memory_format=torch.channels_last)


def check_together(specs: list[RunSpec]) -> None:
    """Runs trained together must be one model under one protocol with distinct seeds."""
    if not specs:
        raise GanbenchError("no runs to train")
    keys = {json.dumps({**s.to_dict(), "seed": None}, sort_keys=True, default=str) for s in specs}
    if len(keys) > 1:
        raise GanbenchError("seeds trained together must share the protocol and the model card; got "
                            + ", ".join(sorted({f"{s.model.name} under {s.protocol.name}" for s in specs})))
    seeds = [s.seed for s in specs]
    if len(set(seeds)) != len(seeds):
        raise GanbenchError(f"seeds trained together must differ, got {seeds}")


def step_dependencies(G: nn.Module, D: nn.Module) -> list[str]:
    """What makes a training step of G and D depend on more than its inputs and the runs' generators:
    draws from torch's global generator (dropout, the style-based generator's noise and mixing) and
    training-progress schedules (progressive growing). Seeds cannot be trained together, nor a step
    replayed as a CUDA graph, with any of these."""
    why = []
    for name, net in (("G", G), ("D", D)):
        mods = list(net.modules())
        if any(isinstance(x, nn.Dropout) and x.p > 0 for x in mods):
            why.append(f"{name} has dropout (it draws from torch's global generator)")
        if any(getattr(x, "draws_global_rng", False) for x in mods):
            why.append(f"{name} draws noise from torch's global generator")
        if any(isinstance(x, ProgressAware) for x in mods):
            why.append(f"{name} follows a training-progress schedule")
    return why


def batch_blockers(spec: RunSpec, G: nn.Module, D: nn.Module) -> list[str]:
    """What training seeds together cannot do (empty: nothing): :func:`step_dependencies`, spectral
    normalisation (in-place power iteration) and feature matching (it calls D's features, not D)."""
    why = step_dependencies(G, D)
    if spec.model.tricks.spectral_norm:
        why.append("spectral normalisation's power iteration updates its vectors in place, which vmap cannot batch")
    if spec.model.tricks.feature_matching:
        why.append("the feature_matching trick calls D's features")
    return why


def check_batchable(spec: RunSpec, G: nn.Module, D: nn.Module) -> None:
    """Refuse, saying why, a model whose seeds cannot train together (:func:`batch_blockers`)."""
    why = batch_blockers(spec, G, D)
    if why:
        raise GanbenchError(f"{spec.model.name} cannot train its seeds together: {'; '.join(why)}. "
                            "Train its seeds one after another (without --concurrent-seeds)")
