;;; Two compiles that run out of what SBCL has: its control stack, its heap.
(defsystem "plait-exhausted")
(defsystem "plait-exhausted/stack" :components ((:file "stack")))
(defsystem "plait-exhausted/heap" :components ((:file "heap")))
