"""ESCNN service: scores each lymph node for metastasis at 20x with an exact streaming ResNet and
draws CAM heatmaps (consumes ln.detected; GPU workers in consumer group `escnn`)."""
