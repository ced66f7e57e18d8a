package sandbox

import "errors"

// dropBoundingSet applies CapabilityBoundingSet= (and the capabilities
// PrivateDevices= and ProtectKernelModules= remove from it).
func dropBoundingSet(o *Options) error {
	if o.CapabilityBoundingSet != nil || o.PrivateDevices || o.ProtectKernelModules {
		return errors.New("CapabilityBoundingSet=: not implemented yet")
	}
	return nil
}

// setSecureBits applies SecureBits=, adding keep-caps while the uid
// changes if AmbientCapabilities= must survive the change.
func setSecureBits(o *Options, userChanges bool) error {
	if o.SecureBits != 0 {
		return errors.New("SecureBits=: not implemented yet")
	}
	return nil
}

// raiseAmbient applies AmbientCapabilities= after the uid changed.
func raiseAmbient(o *Options, userChanges bool) error {
	if o.AmbientCapabilities != 0 {
		return errors.New("AmbientCapabilities=: not implemented yet")
	}
	return nil
}
