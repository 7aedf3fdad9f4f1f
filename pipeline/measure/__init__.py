"""Measuring: a mask in, particles with their sizes out, and the sample's PSD.

    particles.label_particles / measure_particles: one row per particle, in schema's columns
    necks.separate_at_necks: touching particles cut apart where they meet at a neck
    edge.profile_edge: where each particle's projected thickness meets the support
    schema.PARTICLE_SCHEMA: names, units and types of the store, the CSV and the JSON
    psd.summarise_sample / psd_histogram.SizeHistogram: the distribution of a sample
"""

from .particles import label_particles, measure_particles
from .psd import summarise, summarise_sample
from .psd_histogram import SizeHistogram, summarise_histogram
from .schema import PARTICLE_SCHEMA

__all__ = ["PARTICLE_SCHEMA", "SizeHistogram", "label_particles", "measure_particles", "summarise",
           "summarise_histogram", "summarise_sample"]
