import dataclasses

import pytest

from ganbench.core.errors import GanbenchError
from ganbench.spec.protocol import identity, load_model, load_protocol, resolve

W = "a" * 64


def test_shipped_protocols_resolve_fully_explicit():
    p = load_protocol("fashion-50ep")
    assert (p.train.epochs, p.train.batch_size, p.seeds, p.eval.num_samples) == (50, 128, (0, 1, 2), 10000)
    specs = resolve(p, W)
    assert [(s.model.name, s.seed) for s in specs] == [(m, s) for m in ("dcgan", "wgan-gp") for s in (0, 1, 2)]
    d = specs[0].to_dict()
    assert d["protocol"]["eval"]["extractor_weights_sha256"] == W
    assert d["model"]["discriminator"]["options"] == {"width": 64, "norm": "batch", "dropout": 0.0}
    assert d["model"]["loss"]["options"] == {"real_label": 1.0, "g_objective": "non-saturating"}
    assert load_model("wgan-gp").n_critic == 5 and load_model("wgan-gp").optim_d.betas == (0.5, 0.9)


def test_hash_tracks_conditions_not_replicates():
    p = load_protocol("fashion-smoke")
    dcgan, assets = load_model("dcgan"), {"weights/inception-v3-compat": W}
    base = identity(p, dcgan, assets).hash
    assert identity(dataclasses.replace(p, seeds=(7, 8)), dcgan, assets).hash == base
    assert identity(dataclasses.replace(p, train=dataclasses.replace(p.train, epochs=2)), dcgan, assets).hash != base
    slower = dataclasses.replace(dcgan, optim_g=dataclasses.replace(dcgan.optim_g, lr=1e-4))
    assert identity(p, slower, assets).hash != base
    other_weights = resolve(p, "b" * 64)[0]  # what the evaluation reads: its identity moves, the training's does not
    assert resolve(p, W)[0].identity.eval_hash != other_weights.identity.eval_hash
    assert resolve(p, W)[0].protocol_hash == other_weights.protocol_hash
    # A default written out explicitly is the same condition as the default left implicit.
    explicit = dataclasses.replace(dcgan, generator=dataclasses.replace(dcgan.generator, options={}))
    assert identity(p, explicit, assets).hash == base


def test_unknown_protocol_lists_available():
    with pytest.raises(GanbenchError, match=r"Unknown protocol 'nope'. Available: .*fashion-50ep.*fashion-smoke"):
        load_protocol("nope")


@pytest.mark.parametrize("body, message", [
    ("models = ['dcgan']\nseeds = [0]\n[data]\ndataset = 'fashion-mnist'\n[train]\nepochs = 'ten'\n[eval]\nnum_samples = 10",
     r"train\.epochs: expected int, got 'ten'"),
    ("models = ['dcgan']\nseeds = [0]\n[data]\ndataset = 'fashion-mnist'\nbatchsize = 3\n[train]\nepochs = 1\n[eval]\nnum_samples = 10",
     r"data: unknown key 'batchsize'"),
    ("models = ['dcgan']\nseeds = [0]\n[data]\ndataset = 'cifar'\n[train]\nepochs = 1\n[eval]\nnum_samples = 10",
     r"data\.dataset: Unknown dataset 'cifar'"),
    ("models = ['dcgan']\nseeds = [0]\n[data]\ndataset = 'mnist'\n[train]\nepochs = 1\n[eval]\nnum_samples = 10\nmetrics = ['fidd']",
     r"eval\.metrics: expected names from"),
    ("models = ['bigan']\nseeds = [0]\n[data]\ndataset = 'mnist'\n[train]\nepochs = 1\n[eval]\nnum_samples = 10",
     r"Unknown model 'bigan'"),
    ("models = ['dcgan']\nseeds = [0]\n[data]\ndataset = 'mnist'\n[train]\nepochs = 1",
     r"missing required key 'eval'"),
    ("models = ['dcgan'\n", r"not valid TOML"),
])
def test_invalid_protocol_names_file_key_and_expectation(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(GanbenchError, match=message) as err:
        load_protocol(str(path))
    assert str(path) in str(err.value) or "Unknown model" in str(err.value)


def test_invalid_zoo_file(tmp_path, monkeypatch):
    (tmp_path / "bad-dcgan.toml").write_text(
        "[generator]\narch='dcgan28-g'\noptions={widht=64}\n[discriminator]\narch='dcgan28-d'\n"
        "[loss]\nname='bce'\n[optim_g]\nlr=1e-4\n[optim_d]\nlr=1e-4\n")
    (tmp_path / "bad-loss.toml").write_text(
        "[generator]\narch='dcgan28-g'\n[discriminator]\narch='dcgan28-d'\n"
        "[loss]\nname='hinge2'\n[optim_g]\nlr=1e-4\n[optim_d]\nlr=1e-4\n")
    monkeypatch.setenv("GANBENCH_ZOO_PATH", str(tmp_path))
    with pytest.raises(GanbenchError, match=r"bad-dcgan\.toml: dcgan28-g options: unknown key 'widht'"):
        load_model("bad-dcgan")
    with pytest.raises(GanbenchError, match=r"bad-loss\.toml: loss\.name: unknown loss 'hinge2'; available: bce"):
        load_model("bad-loss")


def test_resolve_rejects_models_outside_the_protocol():
    with pytest.raises(GanbenchError, match="not part of protocol"):
        resolve(load_protocol("fashion-smoke"), W, models=["lsgan"])
