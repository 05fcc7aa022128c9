"""Marrow service: bone-marrow ROI proposal, MDS / AML / donor classification and occlusion
sensitivity maps (consumes slides.scanned with specimen bone_marrow; consumer group `marrow`)."""
