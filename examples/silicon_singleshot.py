"""Single-shot SOREP of diamond silicon with the real pw.x, through the ``sorep.singleshot`` work chain.

Run it after ``aiida-sorep setup`` (``bash bootstrap.sh setup`` does that)::

    python examples/silicon_singleshot.py [PROFILE]

Every number printed is read back from the nodes stored in the profile.
"""

import sys

from aiida import load_profile, orm
from aiida.engine import run_get_node
from ase.build import bulk

load_profile(sys.argv[1] if len(sys.argv) > 1 else 'sorep', allow_switch=True)

from aiida_sorep.workflows.singleshot import SingleShotWorkChain  # noqa: E402  (needs the loaded profile)

structure = orm.StructureData(ase=bulk('Si', 'diamond', a=5.431))
code = orm.load_code('pw@localhost')
builder = SingleShotWorkChain.get_builder_from_protocol(code, structure, protocol='fast')
results, node = run_get_node(builder)

fermi = results['fermi'].get_dict()
eigenvalues = results['output_band'].get_bands()  # (n_kpoints, n_bands) in eV; k-point 0 is Gamma
print(f'{node.process_label}<{node.pk}>: exit status {node.exit_status}, pw.x {fermi["single_shot_flavour"]}')
print('Eigenvalues at Gamma (eV): ' + ' '.join(f'{value:.3f}' for value in eigenvalues[0]))
print(
    f'Fermi level {fermi["fermi_energy"]:.3f} eV ({fermi["method"]}), VBM {fermi["vbm"]:.3f} eV, '
    f'CBM {fermi["cbm"]:.3f} eV, gap {fermi["band_gap"]:.3f} eV'
)
for name, features in results['features'].items():
    print(f'features.{name}: SorepFeaturesData<{features.pk}>, {features.features.size} points')
