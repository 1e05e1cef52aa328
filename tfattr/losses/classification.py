"""Attribute classification losses over a `Schema`'s multi-hot columns."""

import tensorflow as tf


def attribute_cross_entropy(logits, attributes, column_slices, binary, label_mask=None):
    """Cross-entropy of attribute logits against multi-hot targets, averaged over attributes.

    Binary attributes (one column) use sigmoid cross-entropy; categorical attributes (K one-hot
    columns) use softmax cross-entropy over their columns (Zhang et al. 2019, Eqs. 2-3, where hair
    colour is one attribute with several values).

    Args:
      logits: float32 `[B, A]`.
      attributes: float32 `[B, A]` multi-hot targets in {0, 1}.
      column_slices: `[(start, stop)]` per attribute (`Schema.column_slices`).
      binary: `[bool]` per attribute (`Attribute.binary`).
      label_mask: optional float32 `[B, G]`, 0 where an attribute is unlabelled.

    Returns:
      float32 `[B]`.
    """
    logits = tf.convert_to_tensor(logits)
    attributes = tf.cast(attributes, logits.dtype)
    terms = []
    for (start, stop), is_binary in zip(column_slices, binary):
        if is_binary:
            terms.append(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=attributes[:, start], logits=logits[:, start])
            )
        else:
            terms.append(
                tf.nn.softmax_cross_entropy_with_logits(labels=attributes[:, start:stop], logits=logits[:, start:stop])
            )
    per_attribute = tf.stack(terms, axis=1)  # [B, G]
    if label_mask is None:
        return tf.reduce_mean(per_attribute, axis=1)
    label_mask = tf.cast(label_mask, per_attribute.dtype)
    return tf.reduce_sum(per_attribute * label_mask, axis=1) / tf.maximum(tf.reduce_sum(label_mask, axis=1), 1.0)


def binary_cross_entropy(logits, labels):
    """Sigmoid cross-entropy averaged over all but the batch axis: `[B, ...]` -> `[B]`."""
    x = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32), logits=logits)
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)
