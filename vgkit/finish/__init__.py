"""Stage 3, finishing: encoding, seams and colour, the stitch, manifest, bundle and verification."""
