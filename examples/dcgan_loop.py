"""A plain DCGAN training loop, as in the PyTorch DCGAN tutorial (Radford et al. 2016's architecture rules at
28x28, Adam(2e-4, beta1 = 0.5), BCE on a D that ends in a sigmoid), on Fashion-MNIST, with ganbench's health
monitor added in three lines (marked "# ganbench").

    python examples/dcgan_loop.py --out runs/dcgan            # healthy
    python examples/dcgan_loop.py --out runs/dcgan-fail --fail  # the saturating G loss against a faster D

The monitor prints each finding when it starts, writes records.parquet, diagnosis.json and timeline.png
under --out, and `ganbench diagnose runs/dcgan/records.parquet` reads the same findings again later.
"""

import argparse

import torch
from torch import nn

import ganbench
from ganbench.data import load_split  # Fashion-MNIST as uint8 (torchvision.datasets.FashionMNIST works as well)


class Generator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),  # 7x7
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),  # 14x14
            nn.ConvTranspose2d(ngf * 2, 1, 4, 2, 1, bias=False), nn.Tanh())  # 28x28

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, ndf: int = 64):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),  # 14x14
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),  # 7x7
            nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1)


def weights_init(m):  # the tutorial's N(0, 0.02) initialisation
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/dcgan-loop")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fail", action="store_true",
                   help="a classic failure: G minimises log(1 - D(G(z))), the original minimax loss that saturates "
                        "(Goodfellow et al. 2014, sec. 3), while D learns 5x faster (1e-3)")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    images = load_split("fashion-mnist", "train").images.float() / 127.5 - 1.0  # [-1, 1], as G's tanh
    netG, netD = Generator(), Discriminator()
    netG.apply(weights_init)
    netD.apply(weights_init)
    lr_d = 1e-3 if args.fail else 2e-4
    optD = torch.optim.Adam(netD.parameters(), lr=lr_d, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCELoss()
    ones, zeros = torch.ones(args.batch), torch.zeros(args.batch)
    monitor = ganbench.Monitor(args.out, dataset="fashion-mnist", check_every=50)  # ganbench
    for step in range(1, args.steps + 1):
        real = images[torch.randint(len(images), (args.batch,))]
        # (1) D: maximise log D(x) + log(1 - D(G(z)))
        netD.zero_grad()
        out_real = netD(real)
        fake = netG(torch.randn(args.batch, 100, 1, 1))
        out_fake = netD(fake.detach())
        errD = criterion(out_real, ones) + criterion(out_fake, zeros)
        errD.backward()
        d_norm = ganbench.grad_norm(netD)
        optD.step()
        # (2) G: maximise log D(G(z)) (the non-saturating loss); --fail: minimise log(1 - D(G(z)))
        netG.zero_grad()
        out_g = netD(fake)
        errG = -criterion(out_g, zeros) if args.fail else criterion(out_g, ones)
        errG.backward()
        g_norm = ganbench.grad_norm(netG)
        optG.step()
        monitor.step(d_loss=errD, g_loss=errG, d_real=out_real, d_fake=out_fake, d_fake_g=out_g,  # ganbench
                     d_grad_norm=d_norm, g_grad_norm=g_norm)
        if step % 100 == 0:
            monitor.samples(fake)  # ganbench (optional): diversity and classes of the generated batch
    diagnosis = monitor.close()  # ganbench
    print(ganbench.format_report(diagnosis))
    return diagnosis


if __name__ == "__main__":
    main()
