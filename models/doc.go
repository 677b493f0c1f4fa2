// Package models holds the network architectures: the backbones (ResNet,
// VGG/VGG-Face, IR-50, EfficientNet-B2) with PyTorch-compatible parameter
// names, and the five published FER systems built on them (Aff-Wild2
// multi-task models, QCS, RMFER, STT). One file per model family; every
// module is a Go struct with named sub-layers and a ForwardT(x, train)
// method so intermediate tensors stay reachable (Grad-CAM, STT, QCS).
package models
