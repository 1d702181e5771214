//! Writing RVC `.pth` files (torch zip + pickle) and reading training checkpoints with their weight-norm pairs intact.
