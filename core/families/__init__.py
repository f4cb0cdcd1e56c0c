"""Model families behind one engine interface (see :mod:`.base`); :mod:`.detect` tells them apart."""
