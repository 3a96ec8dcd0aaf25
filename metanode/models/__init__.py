"""Neural ODE models: the grey-image ODE-Net, its ResNet baseline and CIFAR-10 nets."""
