"""A plain WGAN-GP training loop (Gulrajani et al. 2017, Algorithm 1: n_critic = 5, lambda = 10,
Adam(1e-4, beta1 = 0, beta2 = 0.9)) on Fashion-MNIST 28x28, with ganbench's health monitor added in three
lines (marked "# ganbench").

    python examples/wgan_gp_loop.py --out runs/wgan-gp              # healthy
    python examples/wgan_gp_loop.py --out runs/wgan-nogp --fail     # no gradient penalty: an unconstrained critic

The critic's outputs go to the monitor as d_outputs="critic": it reads the critic gap E[D(x)] - E[D(G(z))]
(positive and bounded when healthy) and the penalty's share of the critic loss.
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
            nn.ConvTranspose2d(nz, ngf * 4, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, 1, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class Critic(nn.Module):  # no batch norm in a WGAN-GP critic: the penalty is per sample
    def __init__(self, ndf: int = 64):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 7, 1, 0))

    def forward(self, x):
        return self.main(x).view(-1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """(||grad D(x_hat)||_2 - 1)^2 at random points between real and fake samples."""
    eps = torch.rand(len(real), 1, 1, 1)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/wgan-gp-loop")
    p.add_argument("--steps", type=int, default=500, help="G steps (each after n_critic critic steps)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--n-critic", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fail", action="store_true", help="drop the gradient penalty (lambda = 0): a classic failure")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    images = load_split("fashion-mnist", "train").images.float() / 127.5 - 1.0
    netG, netD = Generator(), Critic()
    optD = torch.optim.Adam(netD.parameters(), lr=1e-4, betas=(0.0, 0.9))
    optG = torch.optim.Adam(netG.parameters(), lr=1e-4, betas=(0.0, 0.9))
    lam = 0.0 if args.fail else 10.0
    monitor = ganbench.Monitor(args.out, dataset="fashion-mnist", d_outputs="critic", check_every=20)  # ganbench
    for step in range(1, args.steps + 1):
        for _ in range(args.n_critic):
            real = images[torch.randint(len(images), (args.batch,))]
            fake = netG(torch.randn(args.batch, 100, 1, 1)).detach()
            netD.zero_grad()
            out_real, out_fake = netD(real), netD(fake)
            gp = gradient_penalty(netD, real, fake) if lam else torch.zeros(())
            errD = out_fake.mean() - out_real.mean() + lam * gp
            errD.backward()
            d_norm = ganbench.grad_norm(netD)
            optD.step()
        netG.zero_grad()
        fake = netG(torch.randn(args.batch, 100, 1, 1))
        out_g = netD(fake)
        errG = -out_g.mean()
        errG.backward()
        g_norm = ganbench.grad_norm(netG)
        optG.step()
        monitor.step(d_loss=errD, g_loss=errG, d_real=out_real, d_fake=out_fake, d_fake_g=out_g,  # ganbench
                     gp=lam * gp, d_grad_norm=d_norm, g_grad_norm=g_norm)
        if step % 50 == 0:
            monitor.samples(fake)  # ganbench (optional)
    diagnosis = monitor.close()  # ganbench
    print(ganbench.format_report(diagnosis))
    return diagnosis


if __name__ == "__main__":
    main()
