// Package losses implements the training objectives of the five systems
// (cross-entropy variants, CCC loss, ArcFace, STT's compact softmax CE,
// RMFER's attention-based contrastive loss) on gotch tensors.
package losses
