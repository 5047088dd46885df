"""The expression classes of the two datasets the expression models learn from, in the order of
their files (a leaf module: the models and the datasets both read it, neither imports the other).

>>> FER_LABELS[3], FERPLUS_LABELS[1]
('happy', 'happiness')
"""

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013 classes in the order of the Kaggle csv's `emotion` column."""
FERPLUS_LABELS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
"""FER+ emotion classes in the order of its vote columns (unknown and NF are dropped)."""
