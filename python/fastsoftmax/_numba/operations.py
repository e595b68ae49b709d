"""The five operations the kernels compute, by number."""

SOFTMAX, LOG_SOFTMAX, SOFTMAX_BACKWARD, LOG_SOFTMAX_BACKWARD, SOFTMAX_JVP = range(5)
