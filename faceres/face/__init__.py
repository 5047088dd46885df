"""The face stage: a decoded photo's faces aligned onto a model's template, assessed and embedded
(`faceres.face.pipeline`), from the boxes and landmarks of `faceres.detect`."""
