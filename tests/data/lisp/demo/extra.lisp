(in-package :plait-demo)

(defun extra () :extra)

;; A literal pathname: its fasl is the same bytes whatever the image interned before.
(defvar *random-device* #P"/dev/urandom")
