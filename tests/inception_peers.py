"""torchvision's Inception3 as Captum and Zennit need it, for the parity tests of tests/test_parity_inception*.py.

Captum's guided backprop, DeconvNet and DeepLIFT act on ReLU and max-pool *modules* through hooks, and Zennit
picks its rules (Norm for average pooling) by module: a functional call is invisible to both, and they
would take the plain gradient there. torchvision's Inception3 calls F.relu in every BasicConv2d,
F.avg_pool2d in front of branch_pool (blocks A, C, E) and F.max_pool2d as the pool branch of B and D.
`modules_for_peers(net)` switches each such block to a subclass whose forward calls a module of its own
for each of these calls (`relu` in BasicConv2d, `pool` in the blocks: the names minixai uses), the same
operations with the same arguments. The blocks' other modules and weights are untouched, so the function is
the same (checked by the parity tests before comparing anything).
"""
import torch
from torchvision.models import inception as tv


class BasicConv2dReLU(tv.BasicConv2d):
    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class InceptionAPooled(tv.InceptionA):
    def _forward(self, x):
        return [self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(self.pool(x))]


class InceptionBPooled(tv.InceptionB):
    def _forward(self, x):
        return [self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.pool(x)]


class InceptionCPooled(tv.InceptionC):
    def _forward(self, x):
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for i in range(1, 6):
            double = getattr(self, f"branch7x7dbl_{i}")(double)
        return [self.branch1x1(x), seven, double, self.branch_pool(self.pool(x))]


class InceptionDPooled(tv.InceptionD):
    def _forward(self, x):
        return [self.branch3x3_2(self.branch3x3_1(x)),
                self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x)))),
                self.pool(x)]


class InceptionEPooled(tv.InceptionE):
    def _forward(self, x):
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return [self.branch1x1(x),
                torch.cat([self.branch3x3_2a(a), self.branch3x3_2b(a)], 1),
                torch.cat([self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b)], 1),
                self.branch_pool(self.pool(x))]


# block class -> (subclass, the module its functional pool becomes)
POOLED = {
    tv.InceptionA: (InceptionAPooled, lambda: torch.nn.AvgPool2d(3, stride=1, padding=1)),
    tv.InceptionB: (InceptionBPooled, lambda: torch.nn.MaxPool2d(3, stride=2)),
    tv.InceptionC: (InceptionCPooled, lambda: torch.nn.AvgPool2d(3, stride=1, padding=1)),
    tv.InceptionD: (InceptionDPooled, lambda: torch.nn.MaxPool2d(3, stride=2)),
    tv.InceptionE: (InceptionEPooled, lambda: torch.nn.AvgPool2d(3, stride=1, padding=1)),
}


def modules_for_peers(net):
    """`net` (an Inception3) with a ReLU module in every BasicConv2d and a pooling module in every block."""
    for module in list(net.modules()):
        if type(module) is tv.BasicConv2d:
            module.__class__ = BasicConv2dReLU
            module.relu = torch.nn.ReLU()
        elif type(module) in POOLED:
            subclass, pool = POOLED[type(module)]
            module.__class__ = subclass
            module.pool = pool()
    return net
