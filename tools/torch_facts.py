"""torch_facts.py - what meson needs of a Python's torch: prefix, C++ ABI, version.

Prints three lines: the folder holding include/ and lib/ (from
torch.utils.cmake_prefix_path, i.e. <prefix>/share/cmake), 1 or 0 for
_GLIBCXX_USE_CXX11_ABI, and torch.__version__.
"""
import os

import torch
import torch.utils

print(os.path.dirname(os.path.dirname(os.path.abspath(torch.utils.cmake_prefix_path))))
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(torch.__version__)
