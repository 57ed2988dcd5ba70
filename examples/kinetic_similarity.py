"""Kinetic-energy SOREPs and their cosine distances, with the pure core only (no AiiDA profile, no pw.x).

python examples/kinetic_similarity.py
"""

from aiida_sorep.core.kinetic import kinetic_sorep
from aiida_sorep.core.similarity import cosine_distance_matrix
from aiida_sorep.core.structures import diamond, k2sn2o3

structures = {'Si': diamond('Si', 5.431), 'Ge': diamond('Ge', 5.658), 'K2Sn2O3': k2sn2o3()}
soreps = {name: kinetic_sorep(structure, kspacing=0.3) for name, structure in structures.items()}
distances = cosine_distance_matrix([sorep.features for sorep in soreps.values()])

names = list(soreps)
print('Cosine distances between kinetic SOREPs')
print(' ' * 8 + ''.join(f'{name:>9}' for name in names))
for name, row in zip(names, distances, strict=True):
    print(f'{name:<8}' + ''.join(f'{value:9.3f}' for value in row))
