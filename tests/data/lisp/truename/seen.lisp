(in-package :plait-truename)

(defparameter *compiled-seeing* #.*loaded-from*)
