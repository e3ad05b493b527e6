/* The HDF5 library Debian ships here is the serial build: it is not thread-safe. Every
 * HDF5 call must hold this process-wide recursive lock, since the activation cache's
 * reader thread and the training thread (results file) both use HDF5. Cheap uncontended. */
#ifndef AF_H5LOCK_H
#define AF_H5LOCK_H
void af_h5_lock(void);
void af_h5_unlock(void);
#endif
