"""sphere-plugins adapter for StyleGAN2-ADA: networks written from scratch, a safe loader for NVlabs
pickles, spherical sampling and GAN fine-tuning."""

from sphere_stylegan2.discriminator import Discriminator
from sphere_stylegan2.generator import Generator
from sphere_stylegan2.mapping import MappingNetwork
from sphere_stylegan2.synthesis import SynthesisNetwork

__all__ = ["Discriminator", "Generator", "MappingNetwork", "SynthesisNetwork"]
