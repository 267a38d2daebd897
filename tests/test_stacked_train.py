"""Stacked MNIST trains on the default (fast) path: its images are a lazy view over MNIST (StackedView), and
the trainer asks its data where it lives. This failed with AttributeError before the view had a device."""

import dataclasses

from ganbench.pipeline.run import training_images
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.training import train


def test_stacked_mnist_trains_on_the_fast_path(tmp_path):
    base = load_protocol("stacked-mnist-cpu")
    proto = dataclasses.replace(base, data=dataclasses.replace(base.data, subset=256),
                                train=dataclasses.replace(base.train, epochs=1))
    spec = resolve(proto, "0" * 64, ["dcgan"], [0])[0]
    res = train(spec, training_images(proto).images, tmp_path, progress=False)
    assert res.status == "finished" and res.steps == 256 // proto.train.batch_size
