"""LN detector service: slide -> TileDB tile store -> lymph-node contours (consumes slides.scanned).

Holds its handler, DeepLabv3+ model, training entry point and FastStream app (consumer group
`detector`).
"""
