"""Contract tests over the zoo: every card loads, builds, trains a few steps to finite losses and
samples images of its protocol's shape; the new losses against their closed forms."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from ganbench.core.errors import GanbenchError
from ganbench.losses import HingeLoss, HingeOptions, LSLoss, LSOptions, WGANLoss, WGANOptions, build_loss
from ganbench.spec.protocol import available, load_model, load_protocol, resolve
from ganbench.pipeline.run import training_images
from ganbench.nets.sampling import generate, is_translator, translate
from ganbench.spec.seeds import fixed_z
from ganbench.training import build_models, train

W = "0" * 64
FAILURES = {m for m in available("zoo") if m.startswith("fail-")}  # induced failures: covered by the diagnose tests


def protocol_of(model: str) -> str:
    """The smallest shipped protocol that lists the model."""
    owners = [p for p in available("protocols") if model in load_protocol(p).models]
    assert owners, f"zoo model {model!r} is in no protocol"
    smoke = [p for p in owners if "smoke" in p or p in ("ring8", "grid25")]
    return (smoke or owners)[0]


def tiny_spec(model: str, subset: int = 64, batch: int = 16):
    proto = load_protocol(protocol_of(model))
    proto = dataclasses.replace(proto, data=dataclasses.replace(proto.data, subset=subset),
                                train=dataclasses.replace(proto.train, epochs=1, batch_size=batch, check_every=2))
    return resolve(proto, W, models=[model], seeds=[0])[0], proto


@pytest.mark.parametrize("model", sorted(set(available("zoo")) - FAILURES))
def test_every_zoo_model_trains_and_samples(tmp_path, model):
    card = load_model(model)
    assert card.paper and card.description, f"{model}: a card names its paper and says what it is"
    spec, proto = tiny_spec(model, subset=80 if card.n_critic > 1 else 48)
    data = training_images(proto)
    sources = getattr(data, "inputs", None)  # image-to-image models translate the task's sources
    res = train(spec, data.images, tmp_path, progress=False, labels=data.labels, sources=sources)
    assert res.status == "finished" and res.steps >= 1
    for col in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm"):
        assert res.records[col].map(math.isfinite).all(), (model, col)
    if is_translator(res.G_eval):
        out = translate(res.G_eval, sources[:6])
    else:
        out = generate(res.G_eval, fixed_z(6, spec.model.z_dim, 1), as_uint8=data.images.dtype == torch.uint8)
    assert out.shape[0] == 6 and out.shape[1:] == data.images.shape[1:]


def test_conditional_models_use_the_label():
    for model in ("cgan-mlp", "cdcgan", "cwgan-gp", "cproj-sngan"):
        spec, _ = tiny_spec(model)
        G, D = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
        assert G.num_classes == 10
        z = fixed_z(4, spec.model.z_dim, 0)
        a, b = generate(G, z, labels=torch.zeros(4, dtype=torch.long)), generate(G, z, labels=torch.ones(4, dtype=torch.long))
        assert not torch.equal(a, b), f"{model}: G ignores y"
        x = torch.rand(4, 1, 28, 28) * 2 - 1
        D.eval()
        assert not torch.allclose(D(x, torch.zeros(4, dtype=torch.long)), D(x, torch.full((4,), 3))), f"{model}: D ignores y"


def test_embedding_conditioning_needs_a_flat_discriminator():
    spec, _ = tiny_spec("cdcgan")
    bad = dataclasses.replace(spec, model=dataclasses.replace(
        spec.model, conditional=dataclasses.replace(spec.model.conditional, d_input="embedding")))
    with pytest.raises(GanbenchError, match="flat-input discriminator"):
        build_models(bad, torch.device("cpu"), torch.Generator().manual_seed(0))


def test_conditional_training_without_labels_is_an_error(tmp_path):
    spec, proto = tiny_spec("cdcgan")
    with pytest.raises(GanbenchError, match="needs one label per training image"):
        train(spec, training_images(proto).images, tmp_path, progress=False)


def test_dcgan64_shapes():
    spec, _ = tiny_spec("dcgan64")
    G, D = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    x = G(torch.randn(3, 100))
    assert x.shape == (3, 1, 64, 64) and x.abs().max() <= 1
    assert D(x).shape == (3,) and D.features(x).shape == (3, 512 * 4 * 4)
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules()) == 5
    assert [m.out_channels for m in D.modules() if isinstance(m, torch.nn.Conv2d)] == [64, 128, 256, 512]


def _scores():
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    return net, torch.randn(16, 4, generator=gen), torch.randn(16, 4, generator=gen), gen


def test_ls_loss_closed_form():
    net, real, fake, gen = _scores()
    d, stats = LSLoss(LSOptions()).d_loss(net, real, fake, gen)
    r, f = net(real), net(fake)
    assert torch.allclose(d, 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean())
    g, _ = LSLoss(LSOptions()).g_loss(net, fake)
    assert torch.allclose(g, 0.5 * ((f - 1) ** 2).mean())
    assert torch.allclose(stats["d_acc_real"], (r > 0.5).float().mean())


def test_hinge_loss_closed_form():
    net, real, fake, gen = _scores()
    d, _ = HingeLoss(HingeOptions()).d_loss(net, real, fake, gen)
    r, f = net(real), net(fake)
    assert torch.allclose(d, F.relu(1 - r).mean() + F.relu(1 + f).mean())
    g, _ = HingeLoss(HingeOptions()).g_loss(net, fake)
    assert torch.allclose(g, -f.mean())


def test_wgan_clips_every_critic_weight():
    net, real, fake, gen = _scores()
    loss = WGANLoss(WGANOptions(clip=0.01))
    d, stats = loss.d_loss(net, real, fake, gen)
    assert torch.allclose(d, -(net(real).mean() - net(fake).mean())) and torch.allclose(stats["critic_gap"], -d)
    assert max(p.abs().max() for p in net.parameters()) > 0.01
    loss.after_d_step(net)
    assert max(p.abs().max() for p in net.parameters()) <= 0.01 + 1e-9
    assert build_loss("wgan", {"clip": 0.05}).opts.clip == 0.05


ZOO_E2E = """
description = "zoo end to end, tiny"
models = ["wgan", "lsgan", "sngan", "cdcgan", "cproj-sngan"]
seeds = [0]

[data]
dataset = "fashion-mnist"
subset = 160

[train]
epochs = 1
batch_size = 32
check_every = 2

[eval]
num_samples = 100
metrics = ["fid", "label_acc", "intra_fid"]
extractor = "domain"
grid_size = 4
"""


def test_new_losses_and_conditional_models_run_end_to_end(tmp_path):
    from mlflow.tracking import MlflowClient

    from ganbench.pipeline.run import run_protocol
    from ganbench.core.track import TAG_HEALTH, tracking_uri

    path = tmp_path / "zoo-e2e.toml"
    path.write_text(ZOO_E2E)
    outcomes = {o.model: o for o in run_protocol(str(path), progress=False)}
    assert sorted(outcomes) == sorted(load_protocol(str(path)).models)  # every model ran, each once
    client = MlflowClient(tracking_uri())
    for model, o in outcomes.items():
        assert o.status == "finished", (model, o.message)
        run = client.get_run(o.run_id)
        assert math.isfinite(run.data.metrics["domain_fid_100_test"]) and TAG_HEALTH in run.data.tags
        conditional = load_model(model).conditional is not None
        assert ("domain_label_acc_100" in run.data.metrics) == conditional, model
        assert ("domain_intra_fid_100_test" in run.data.metrics) == conditional, model
        assert (o.run_dir / "spec.json").is_file()


def test_an_unknown_optimizer_is_an_error_not_rmsprop():
    from ganbench.training.models import make_optimizer

    spec = load_model("dcgan").optim_g
    assert isinstance(make_optimizer([torch.nn.Parameter(torch.ones(1))], spec), torch.optim.Adam)
    with pytest.raises(GanbenchError, match="Unknown optimizer 'sgd'. Available: adam, rmsprop"):
        make_optimizer([torch.nn.Parameter(torch.ones(1))], dataclasses.replace(spec, name="sgd"))
