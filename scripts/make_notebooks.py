"""(Re)generate the lead-owned notebooks from code, with no outputs saved.

Run: python scripts/make_notebooks.py   (notebooks/00_setup.ipynb, colab_setup.ipynb)
"""
from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parents[1]


def nb(cells):
    n = nbf.v4.new_notebook()
    n.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    n.metadata["language_info"] = {"name": "python"}
    out = []
    for kind, src, *tags in cells:
        c = nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src)
        if tags:
            c.metadata["tags"] = list(tags[0])
        out.append(c)
    n.cells = out
    return n


setup = nb([
    ("md", "# 00 · Setup check\n\nChecks ffmpeg, the Python packages, the GPU, the offline Whisper models that ship inside PyPI packages, and which secrets are set (never their values). Run `make setup` (or `colab_setup.ipynb` on Colab) first."),
    ("code", "# parameters\nprepare_models = True   # assemble the offline 'base' model now (once; ~140 MB)\n", ["parameters"]),
    ("code", "import ipywidgets as widgets\nfrom IPython.display import display\n\nw_prepare = widgets.Checkbox(value=prepare_models, description='assemble offline base model')\nw_prepare.observe(lambda ch: globals().__setitem__('prepare_models', ch['new']), names='value')\ndisplay(w_prepare)"),
    ("code", "from vidtrans.doctor import check_environment, format_checks\n\nchecks = check_environment(prepare_models=prepare_models)\nprint(format_checks(checks))\nmissing = [c.name for c in checks if c.required and not c.ok]\nassert not missing, f'fix these first: {missing}'"),
    ("code", "import matplotlib.pyplot as plt\n\n# one glance: which features are ready\nfig, ax = plt.subplots(figsize=(7, 0.28 * len(checks) + 0.6))\ncolors = ['tab:green' if c.ok else ('tab:red' if c.required else 'tab:gray') for c in checks]\nax.barh([c.name for c in checks], [1] * len(checks), color=colors)\nax.set_xticks([]); ax.invert_yaxis(); ax.set_title('ready (green) / missing required (red) / optional missing (gray)')\nplt.tight_layout(); plt.show()"),
])

colab = nb([
    ("md", "# vidtrans on Google Colab\n\n1. *Runtime → Change runtime type → GPU*.\n2. Put API keys in Colab **Secrets** (the key icon on the left): `ASSEMBLYAI_API_KEY`, `GEMINI_API_KEY`, `HF_TOKEN` — only the ones you use. They are read here into the process environment and never printed or stored in the notebook.\n3. Run all cells, then open `notebooks/02_transcribe.ipynb`."),
    ("code", "# parameters\nrepo_url = ''          # git URL of vidtrans to clone when not already inside a checkout\ninstall = True         # pip install requirements-colab.txt (skipped automatically outside Colab)\n", ["parameters"]),
    ("code", "import importlib.util, os, subprocess, sys\nfrom pathlib import Path\n\nIN_COLAB = importlib.util.find_spec('google.colab') is not None\nroot = Path.cwd()\nif not (root / 'requirements-colab.txt').exists() and (root.parent / 'requirements-colab.txt').exists():\n    root = root.parent\nif not (root / 'requirements-colab.txt').exists() and repo_url:\n    subprocess.run(['git', 'clone', '--depth', '1', repo_url, 'vidtrans'], check=True)\n    root = Path('vidtrans').resolve()\nos.chdir(root)\nprint('in Colab:', IN_COLAB, '| project:', root)"),
    ("code", "def pip(*args):\n    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', *args], check=True)\n\nif install and IN_COLAB:\n    subprocess.run(['bash', 'scripts/setup_system.sh'], check=True)   # ffmpeg (already on Colab)\n    pip('-r', 'requirements-colab.txt')\n    pip('--no-deps', '-r', 'requirements-nodeps.txt')\n    pip('--no-deps', '-e', '.')\n    print('installed')\nelse:\n    print('install skipped (not on Colab or install=False)')"),
    ("code", "# GPU check\nimport ctranslate2\nn = ctranslate2.get_cuda_device_count()\nprint(f'CTranslate2 sees {n} CUDA device(s)' + ('' if n else ' — CPU mode (int8); switch the runtime to GPU for ~10x speed'))\ntry:\n    import torch\n    print('torch', torch.__version__, '| cuda:', torch.cuda.is_available())\nexcept ImportError:\n    print('torch not installed')"),
    ("code", "# Secrets: Colab userdata -> environment, for this runtime only. Values are never printed.\nSECRET_NAMES = ['ASSEMBLYAI_API_KEY', 'GEMINI_API_KEY', 'GOOGLE_API_KEY', 'HF_TOKEN']\nloaded = []\nif IN_COLAB:\n    from google.colab import userdata\n    for name in SECRET_NAMES:\n        try:\n            value = userdata.get(name)\n        except Exception:\n            continue\n        if value:\n            os.environ[name] = value\n            loaded.append(name)\n        del value\nprint('secrets available:', [n for n in SECRET_NAMES if os.environ.get(n)] or 'none (offline engines only)')"),
    ("code", "from vidtrans.doctor import check_environment, format_checks\nprint(format_checks(check_environment()))"),
])

nbf.write(setup, ROOT / "notebooks" / "00_setup.ipynb")
nbf.write(colab, ROOT / "colab_setup.ipynb")
print("wrote notebooks/00_setup.ipynb, colab_setup.ipynb")
