"""SMEN (paper 002): the 36 km -> 3 km soil-moisture downscaling network, its training and export."""
