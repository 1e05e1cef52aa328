"""Running tfattr models on ordinary photos: face detection, alignment to the training crop,
paste-back (`python -m tfattr.transfer`). Importing this package loads neither TensorFlow nor mtcnn."""
