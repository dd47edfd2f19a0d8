!> l96_model: the one-scale Lorenz-96 model, the "climate model" of the twin
!> experiment (the coupling to the fast variables Y is missing):
!>
!>   dX_k/dt = -X_{k-1} (X_{k-2} - X_{k+1}) - X_k + F  [- U(X_k)]  [+ (X^truth_k - X_k)/tau]
!>
!> with classical RK4 at dt (default 0.005 MTU) on a periodic ring split over
!> MPI ranks in contiguous blocks (halos by MPI_Sendrecv; bitwise independent
!> of the rank count). Options:
!>   param=wilks2005   U(X) = 0.000707 X^4 - 0.0130 X^3 - 0.0190 X^2 + 1.59 X + 0.275
!>                     (Wilks 2005, F=18), subtracted inside the RK4 tendency
!>   nudge_file, tau   nudging towards a truth file, the truth interpolated
!>                     linearly in time to the RK4 stage times; the RK4-weighted
!>                     nudging tendency is written as nudging_tendency(time,k)
!>   checkpoint=DIR    atmocorrect: after every full RK4 step,
!>                     atmocorrect_step(ac, t, dt) corrects X in place
!>                     (built with -DWITH_ATMOCORRECT only)
!>   mode=residual     one-step residuals (X_truth(t+D) - M(X_truth(t)))/D
!>
!> Run with --help for the arguments.
program l96_model
   use mpi_f08
   use l96_kinds
   use l96_args
   use l96_ring
   use l96_ncio
   use l96_report, only: timestamp, report_failure
#ifdef WITH_ATMOCORRECT
   use atmocorrect
#endif
   implicit none

   type(args_t) :: args
   type(ring_t) :: ring
   type(ncw_t) :: out
   type(series_t) :: nudge, truth
   type(ncr_t) :: initf
#ifdef WITH_ATMOCORRECT
   type(atmocorrect_t) :: ac
#endif
   integer :: stat, rank, nprocs
   character(len=msg_len) :: errmsg

   ! arguments
   integer :: K, nsteps, seed, init_index, nbuf, first, count
   real(dp) :: F, dt, length, out_every, tau, perturb
   character(len=:), allocatable :: mode, param, init_file, nudge_file, checkpoint, output, truth_file
   logical :: have_nsteps, have_length, have_k, have_tau, have_init, use_param, nudging, coupled

   ! state with halos x(-1:nloc+1) (target: registered with atmocorrect in place)
   real(dp), allocatable, target :: x(:)
   real(dp), allocatable :: xs(:), kx(:, :), kn(:, :)
   real(dp), allocatable :: xt(:, :)            ! truth at the RK4 stage times (nloc, 3)
   real(dp), allocatable :: pend_x(:), nudge_acc(:), corr_acc(:), xbefore(:), work(:)
   integer :: nloc, stride, n, ivx, ivn, ivc, ivf, ivr, nsub, i
   real(dp) :: t0, pend_t, delta
   integer(i8) :: c0, c1, crate
   real(dp), parameter :: wilks(5) = [0.275_dp, 1.59_dp, -0.0190_dp, -0.0130_dp, 0.000707_dp]

   call MPI_Init()
   call MPI_Comm_rank(MPI_COMM_WORLD, rank)
   call MPI_Comm_size(MPI_COMM_WORLD, nprocs)

   call args_load(args, stat, errmsg)
   call check(stat, errmsg)
   if (args_wants_help(args)) then
      if (rank == 0) call usage()
      call MPI_Finalize()
      stop
   end if
   call args_get_str(args, "mode", mode, "run")
   have_k = args_has(args, "K")
   have_nsteps = args_has(args, "nsteps")
   have_length = args_has(args, "length")
   have_tau = args_has(args, "tau")
   call args_get_int(args, "K", K, 8, stat, errmsg)
   call args_get_real(args, "F", F, 18.0_dp, stat, errmsg)
   call args_get_real(args, "dt", dt, 0.005_dp, stat, errmsg)
   call args_get_str(args, "init_file", init_file, "", have_init)
   call args_get_int(args, "init_index", init_index, 0, stat, errmsg)
   call args_get_int(args, "seed", seed, 1, stat, errmsg)
   call args_get_real(args, "perturb", perturb, 1.0_dp, stat, errmsg)
   call args_get_int(args, "nsteps", nsteps, 200, stat, errmsg)
   call args_get_real(args, "length", length, 1.0_dp, stat, errmsg)
   call args_get_real(args, "out_every", out_every, -1.0_dp, stat, errmsg)
   call args_get_str(args, "param", param, "none")
   call args_get_str(args, "nudge_file", nudge_file, "")
   call args_get_real(args, "tau", tau, 0.0_dp, stat, errmsg)
   call args_get_str(args, "checkpoint", checkpoint, "")
   call args_get_str(args, "truth_file", truth_file, "")
   call args_get_int(args, "first", first, 0, stat, errmsg)
   call args_get_int(args, "count", count, -1, stat, errmsg)
   call args_get_int(args, "buffer", nbuf, 2000, stat, errmsg)
   call args_get_str(args, "output", output, "l96_model.nc")
   call args_unused(args, stat, errmsg)
   call check(stat, errmsg)

   ! ------------------------------------------------------------- validate
   if (dt <= 0.0_dp) call fail("dt must be positive")
   if (out_every < 0.0_dp) out_every = dt
   stride = nint(out_every/dt)
   if (stride < 1 .or. abs(stride*dt - out_every) > 1.0e-9_dp*max(1.0_dp, out_every)) &
      call fail("out_every must be a positive multiple of dt")
   if (nbuf < 1) call fail("buffer must be at least 1")
   select case (param)
   case ("none")
      use_param = .false.
   case ("wilks2005")
      use_param = .true.
      if (abs(F - 18.0_dp) > 1.0e-12_dp .and. rank == 0) &
         write (*, '(a)') "l96_model: warning: the Wilks (2005) quartic was fitted for F=18"
   case default
      call fail("param='"//param//"' is not one of none, wilks2005")
   end select
   nudging = len(nudge_file) > 0
   if (nudging .and. (.not. have_tau .or. tau <= 0.0_dp)) call fail("nudge_file= needs tau= (MTU, > 0)")
   if (.not. nudging .and. have_tau) call fail("tau= is only used with nudge_file=")
   coupled = len(checkpoint) > 0
#ifndef WITH_ATMOCORRECT
   if (coupled) call fail("checkpoint= needs l96_model built with atmocorrect (make WITH_ATMOCORRECT=1)")
#endif
   select case (mode)
   case ("run")
      if (len(truth_file) > 0) call fail("truth_file= is for mode=residual (use init_file= / nudge_file=)")
      if (have_nsteps .and. have_length) call fail("give nsteps= or length=, not both")
      if (have_length) then
         nsteps = nint(length/dt)
         if (abs(nsteps*dt - length) > 1.0e-9_dp*max(1.0_dp, length)) call fail("length must be a multiple of dt")
      end if
      if (nsteps < 0) call fail("nsteps must not be negative")
      if (modulo(nsteps, stride) /= 0) call fail("the run length must be a multiple of out_every")
   case ("residual")
      if (len(truth_file) == 0) call fail("mode=residual needs truth_file=")
      if (nudging .or. coupled .or. have_init .or. have_nsteps .or. have_length) &
         call fail("mode=residual takes truth_file= [first= count=], not nudge_file/checkpoint/init_file/nsteps/length")
   case default
      call fail("mode='"//mode//"' is not one of run, residual")
   end select

   ! K from the input file when there is one
   if (mode == "residual") then
      call ncr_open(initf, truth_file, stat, errmsg)
      call check(stat, errmsg)
      call k_from_file(truth_file, initf%ktot)
      call ncr_close(initf)
   else if (have_init) then
      call ncr_open(initf, init_file, stat, errmsg)
      call check(stat, errmsg)
      call k_from_file(init_file, initf%ktot)
   end if
   if (K < 4) call fail("K must be at least 4")

   call ring_init(ring, MPI_COMM_WORLD, K, 2, stat, errmsg)
   call check(stat, errmsg)
   nloc = ring%nloc
   allocate (x(-1:nloc + 1), xs(-1:nloc + 1), kx(nloc, 4), kn(nloc, 4), xt(nloc, 3))
   allocate (pend_x(nloc), nudge_acc(nloc), corr_acc(nloc), xbefore(nloc), work(nloc))
   x = 0.0_dp
   kn = 0.0_dp
   nudge_acc = 0.0_dp
   corr_acc = 0.0_dp

   call system_clock(c0, crate)
   if (mode == "residual") then
      call run_residual()
   else
      call run_forward()
   end if
   call system_clock(c1)
   if (rank == 0) write (*, '(a)') "l96_model: done in "//fmt(real(c1 - c0, dp)/real(crate, dp), 2)//" s -> "//output
   call MPI_Finalize()

contains

   subroutine usage()
      write (*, '(a)') &
         "usage: mpirun -np N l96_model [key=value ...]", &
         "", &
         "One-scale Lorenz-96 (RK4): dX_k/dt = -X_{k-1}(X_{k-2}-X_{k+1}) - X_k + F [- U(X_k)] [+ nudging]", &
         "", &
         "mode=run (default): integrate forward", &
         "  init_file=FILE   initial X from FILE (a truth or model file with X(time,k));", &
         "                   K and the start time come from it", &
         "  init_index=0     time index in init_file, 0-based; negative counts from the end (-1 = last)", &
         "  K=8 seed=1 perturb=1   without init_file: K sites, X_k = perturb*(2u-1), t starts at 0", &
         "  nsteps=200 | length=MTU   run length (steps of dt, or MTU)", &
         "  dt=0.005         RK4 time step, MTU", &
         "  out_every=dt     output interval, MTU (multiple of dt)", &
         "  F=18             forcing", &
         "  param=none|wilks2005   subtract Wilks (2005) U(X)=0.000707X^4-0.0130X^3-0.0190X^2+1.59X+0.275", &
         "  nudge_file=FILE tau=MTU   nudge towards X in FILE with tendency (X_file - X)/tau;", &
         "                   FILE is interpolated linearly in time to the RK4 stage times", &
         "  checkpoint=DIR   correct X with atmocorrect after every RK4 step (WITH_ATMOCORRECT build)", &
         "", &
         "mode=residual: one-step residuals for training", &
         "  truth_file=FILE  for each sample t (first=0 .. first+count-1, 0-based; count=-1: all but the last):", &
         "                   residual_tendency(t) = (X_truth(t+D) - M(X_truth(t)))/D, D = sample spacing,", &
         "                   M = D/dt model steps (with param= if given); X_forecast(t) = M(X_truth(t))", &
         "", &
         "  output=l96_model.nc   netCDF file (written as output.tmp, renamed at the end)", &
         "  buffer=2000      output records buffered between writes", &
         "", &
         "Time convention: 1 MTU = 5 days; time is in days since 2000-01-01 00:00:00", &
         "(proleptic_gregorian); atmocorrect gets seconds (1 MTU = 432000 s).", &
         "Tendencies are in X units per MTU. A tendency at record time t covers the", &
         "output interval [t, t+out_every], so a nudged or coupled run of N intervals has N", &
         "records (t0 .. end-out_every) and a plain run N+1 (t0 .. end)."
   end subroutine usage

   subroutine k_from_file(path, kfile)
      character(len=*), intent(in) :: path
      integer, intent(in) :: kfile
      character(len=64) :: s
      if (have_k .and. K /= kfile) then
         write (s, '(a,i0,a,i0)') "K=", K, " but the file has K=", kfile
         call fail("'"//path//"': "//trim(s))
      end if
      K = kfile
   end subroutine k_from_file

   ! ------------------------------------------------------------- output
   subroutine open_output()
      call ncw_create(out, ring, output, 0, nbuf, stat, errmsg)
      call check(stat, errmsg)
      call ncw_def_field(out, "X", "Lorenz-96 slow variable X (one-scale model)", "1", 1, ivx, stat, errmsg)
      if (mode == "residual") then
         call ncw_def_field(out, "X_forecast", "one-step model forecast from X, valid at t + sample spacing", &
                            "1", 1, ivf, stat, errmsg)
         call ncw_def_field(out, "residual_tendency", &
                            "one-step residual (X_truth(t+D) - X_forecast)/D, D = sample spacing", "MTU-1", 1, ivr, &
                            stat, errmsg)
      end if
      if (nudging) call ncw_def_field(out, "nudging_tendency", &
                                      "nudging tendency (X_truth - X)/tau, RK4-weighted mean over [t, t+out_every]", &
                                      "MTU-1", 1, ivn, stat, errmsg)
      if (coupled) call ncw_def_field(out, "correction_tendency", &
                                      "atmocorrect increment / dt, mean over [t, t+out_every]", "MTU-1", 1, ivc, &
                                      stat, errmsg)
      call ncw_att(out, "title", "One-scale Lorenz-96 model run (atmocorrect twin experiment)", stat, errmsg)
      call ncw_att(out, "history", timestamp()//": "//args_cmdline(args), stat, errmsg)
      call ncw_att(out, "source", "atmocorrect examples/lorenz96/l96_model.F90: one-scale Lorenz-96, RK4", stat, errmsg)
      call ncw_att(out, "institution", "atmocorrect example", stat, errmsg)
      call ncw_att(out, "mode", mode, stat, errmsg)
      call ncw_att(out, "K", K, stat, errmsg)
      call ncw_att(out, "F", F, stat, errmsg)
      call ncw_att(out, "dt", dt, stat, errmsg)
      call ncw_att(out, "dt_units", "MTU", stat, errmsg)
      call ncw_att(out, "output_interval_mtu", out_every, stat, errmsg)
      call ncw_att(out, "param", param, stat, errmsg)
      if (use_param) call ncw_att(out, "param_formula", &
                                  "dX/dt -= 0.000707 X^4 - 0.0130 X^3 - 0.0190 X^2 + 1.59 X + 0.275 (Wilks 2005)", &
                                  stat, errmsg)
      if (mode == "residual") then
         call ncw_att(out, "truth_file", truth_file, stat, errmsg)
         call ncw_att(out, "sample_spacing_mtu", delta, stat, errmsg)
         call ncw_att(out, "residual_convention", &
                      "residual_tendency at t = (X_truth(t+D) - M(X_truth(t)))/D, X = X_truth(t)", stat, errmsg)
      end if
      if (have_init) call ncw_att(out, "init_file", init_file, stat, errmsg)
      if (have_init) call ncw_att(out, "init_index", init_index, stat, errmsg)
      if (.not. have_init .and. mode == "run") call ncw_att(out, "seed", seed, stat, errmsg)
      if (nudging) then
         call ncw_att(out, "nudge_file", nudge_file, stat, errmsg)
         call ncw_att(out, "tau", tau, stat, errmsg)
         call ncw_att(out, "nudging_convention", "truth interpolated linearly in time to the RK4 stage times; "// &
                      "nudging_tendency at t is (n1+2n2+2n3+n4)/6 averaged over the steps in [t, t+out_every]", &
                      stat, errmsg)
      end if
      if (coupled) then
         call ncw_att(out, "checkpoint", checkpoint, stat, errmsg)
         call ncw_att(out, "correction_convention", "after every RK4 step, X += dt * tendency (atmocorrect_step)", &
                      stat, errmsg)
      end if
      call ncw_enddef(out, stat, errmsg)
      call check(stat, errmsg)
   end subroutine open_output

   ! ------------------------------------------------------------- forward run
   subroutine run_forward()
      integer :: idx
      character(len=64) :: s
      if (have_init) then
         idx = init_index
         if (idx < 0) idx = initf%ntime + idx
         if (idx < 0 .or. idx >= initf%ntime) then
            write (s, '(a,i0,a,i0,a)') "init_index=", init_index, " is outside 0..", initf%ntime - 1, ""
            call fail("'"//init_file//"': "//trim(s))
         end if
         call ncr_read(initf, "X", ring%koff, idx, kx(:, 1:1), stat, errmsg)
         call check(stat, errmsg)
         x(1:nloc) = kx(:, 1)
         t0 = initf%time_mtu(idx + 1)
         call ncr_close(initf)
      else
         call seeded_state()
         t0 = 0.0_dp
      end if
      if (nudging) then
         call series_open(nudge, nudge_file, "X", ring%koff, nloc, nbuf, stat, errmsg)
         call check(stat, errmsg)
         if (nudge%r%ktot /= K) call fail("'"//nudge_file//"' has a different K from the model")
      end if
      if (coupled) call coupling_init()
      call open_output()
      if (rank == 0) write (*, '(a,i0,a,i0,a,i0,a)') "l96_model: K=", K, ", ", nsteps, " steps on ", nprocs, " rank(s)"

      pend_x = x(1:nloc)
      pend_t = t0
      do n = 1, nsteps
         call rk4_step(t0 + (n - 1)*dt)
         if (coupled) call coupling_step(t0 + n*dt)
         if (modulo(n, stride) == 0) then
            call check_finite(t0 + n*dt)
            call ncw_stage(out, ivx, pend_x)
            if (nudging) call ncw_stage(out, ivn, nudge_acc/real(stride, dp))
            if (coupled) call ncw_stage(out, ivc, corr_acc/real(stride, dp))
            call ncw_commit(out, pend_t, stat, errmsg)
            call check(stat, errmsg)
            pend_x = x(1:nloc)
            pend_t = t0 + n*dt
            nudge_acc = 0.0_dp
            corr_acc = 0.0_dp
         end if
      end do
      ! the final state has no interval after it: written only when no tendency
      ! is recorded, so that every record of a nudged/coupled run is complete
      if (.not. (nudging .or. coupled)) then
         call ncw_stage(out, ivx, pend_x)
         call ncw_commit(out, pend_t, stat, errmsg)
      end if
      call ncw_close(out, stat, errmsg)
      call check(stat, errmsg)
      if (nudging) call series_close(nudge)
      if (coupled) call coupling_finalize()
   end subroutine run_forward

   ! ------------------------------------------------------------- residuals
   subroutine run_residual()
      integer :: nt, last, it
      character(len=96) :: s
      call series_open(truth, truth_file, "X", ring%koff, nloc, nbuf + 1, stat, errmsg)
      call check(stat, errmsg)
      nt = truth%r%ntime
      if (first < 0 .or. first > nt - 2) then
         write (s, '(a,i0,a,i0)') "first=", first, " must be in 0..", nt - 2
         call fail("'"//truth_file//"': "//trim(s))
      end if
      if (count < 0) count = nt - 1 - first
      last = first + count - 1          ! last sample (0-based), needs last+1
      if (last > nt - 2) then
         write (s, '(a,i0,a,i0,a)') "count=", count, " from first=", first, " runs past the end"
         call fail("'"//truth_file//"': "//trim(s))
      end if
      delta = 0.0_dp
      nsub = 0
      if (count > 0) then
         delta = truth%r%time_mtu(first + 2) - truth%r%time_mtu(first + 1)
         nsub = nint(delta/dt)
         if (nsub < 1 .or. abs(nsub*dt - delta) > 1.0e-9_dp) then
            call fail("'"//truth_file//"': sample spacing "//fmt(delta, 6)//" MTU is not a multiple of dt="//fmt(dt, 6))
         end if
         do it = first + 1, last + 1
            if (abs(truth%r%time_mtu(it + 1) - truth%r%time_mtu(it) - delta) > 1.0e-9_dp) &
               call fail("'"//truth_file//"': the time axis is not evenly spaced")
         end do
      end if
      call open_output()
      if (rank == 0) write (*, '(a,i0,a,i0,a)') "l96_model: residuals of ", count, " samples, K=", K, ""
      do it = first + 1, last + 1
         call series_record(truth, it, work, stat, errmsg)
         call check(stat, errmsg)
         x(1:nloc) = work
         do i = 1, nsub
            call rk4_step(truth%r%time_mtu(it) + (i - 1)*dt)
         end do
         call check_finite(truth%r%time_mtu(it) + delta)
         call ncw_stage(out, ivx, work)
         call ncw_stage(out, ivf, x(1:nloc))
         call series_record(truth, it + 1, work, stat, errmsg)
         call check(stat, errmsg)
         call ncw_stage(out, ivr, (work - x(1:nloc))/delta)
         call ncw_commit(out, truth%r%time_mtu(it), stat, errmsg)
         call check(stat, errmsg)
      end do
      call ncw_close(out, stat, errmsg)
      call check(stat, errmsg)
      call series_close(truth)
   end subroutine run_residual

   ! ------------------------------------------------------------- dynamics
   subroutine seeded_state()
      integer(i8), parameter :: m = 2147483647_i8, a = 48271_i8
      integer(i8) :: s
      integer :: g
      s = modulo(int(seed, i8), m - 1_i8) + 1_i8
      do g = 1, 10
         s = modulo(a*s, m)
      end do
      do g = 1, K
         s = modulo(a*s, m)
         if (g > ring%koff .and. g <= ring%koff + nloc) &
            x(g - ring%koff) = perturb*(2.0_dp*real(s, dp)/real(m, dp) - 1.0_dp)
      end do
   end subroutine seeded_state

   subroutine halo()
      call ring_exchange(ring, xs(1:1), xs(nloc - 1:nloc), xs(-1:0), xs(nloc + 1:nloc + 1))
   end subroutine halo

   !> Tendency of the stage state xs (halos filled) into kx(:, s); with
   !> nudging towards xt(:, it), the nudging part also into kn(:, s).
   subroutine tendency(s, it)
      integer, intent(in) :: s, it
      integer :: kl
      real(dp) :: v
      do kl = 1, nloc
         kx(kl, s) = -xs(kl - 1)*(xs(kl - 2) - xs(kl + 1)) - xs(kl) + F
      end do
      if (use_param) then
         do kl = 1, nloc
            v = xs(kl)
            kx(kl, s) = kx(kl, s) - ((((wilks(5)*v + wilks(4))*v + wilks(3))*v + wilks(2))*v + wilks(1))
         end do
      end if
      if (nudging) then
         do kl = 1, nloc
            kn(kl, s) = (xt(kl, it) - xs(kl))/tau
            kx(kl, s) = kx(kl, s) + kn(kl, s)
         end do
      end if
   end subroutine tendency

   !> One RK4 step from model time t (MTU).
   subroutine rk4_step(t)
      real(dp), intent(in) :: t
      real(dp) :: h2, h6
      h2 = 0.5_dp*dt
      h6 = dt/6.0_dp
      if (nudging) then
         call series_at(nudge, t, xt(:, 1), stat, errmsg)
         call series_at(nudge, t + h2, xt(:, 2), stat, errmsg)
         call series_at(nudge, t + dt, xt(:, 3), stat, errmsg)
         call check(stat, errmsg)
      end if
      xs(1:nloc) = x(1:nloc)
      call halo()
      call tendency(1, 1)
      xs(1:nloc) = x(1:nloc) + h2*kx(:, 1)
      call halo()
      call tendency(2, 2)
      xs(1:nloc) = x(1:nloc) + h2*kx(:, 2)
      call halo()
      call tendency(3, 2)
      xs(1:nloc) = x(1:nloc) + dt*kx(:, 3)
      call halo()
      call tendency(4, 3)
      x(1:nloc) = x(1:nloc) + h6*(kx(:, 1) + 2.0_dp*kx(:, 2) + 2.0_dp*kx(:, 3) + kx(:, 4))
      if (nudging) nudge_acc = nudge_acc + (kn(:, 1) + 2.0_dp*kn(:, 2) + 2.0_dp*kn(:, 3) + kn(:, 4))/6.0_dp
   end subroutine rk4_step

   subroutine check_finite(t)
      real(dp), intent(in) :: t
      logical :: bad
      bad = .not. all(abs(x(1:nloc)) < 1.0e10_dp)
      if (nprocs > 1) call MPI_Allreduce(MPI_IN_PLACE, bad, 1, MPI_LOGICAL, MPI_LOR, MPI_COMM_WORLD)
      if (bad) then
         call ncw_close(out, stat, errmsg, keep_tmp=.true.)
         call fail("the model state blew up (not finite or > 1e10) at t="//fmt(t*days_per_mtu)// &
                   " days; records so far are in "//output//".tmp")
      end if
   end subroutine check_finite

   ! ------------------------------------------------------------- coupling
   subroutine coupling_init()
#ifdef WITH_ATMOCORRECT
      call atmocorrect_init(ac, checkpoint, MPI_COMM_WORLD%MPI_VAL, stat=stat, errmsg=errmsg)
      call check(stat, "atmocorrect_init('"//checkpoint//"'): "//errmsg)
      call atmocorrect_set_grid(ac, [K], [ring%koff], stat=stat, errmsg=errmsg)
      call check(stat, "atmocorrect_set_grid: "//errmsg)
      call atmocorrect_add_field(ac, "x", x(1:nloc), units="1", stat=stat, errmsg=errmsg)
      call check(stat, "atmocorrect_add_field(x): "//errmsg)
#endif
   end subroutine coupling_init

   !> After a full RK4 step ending at model time t (MTU): X += correction,
   !> in place, by atmocorrect; record the increment / dt.
   subroutine coupling_step(t)
      real(dp), intent(in) :: t
#ifdef WITH_ATMOCORRECT
      xbefore = x(1:nloc)
      call atmocorrect_step(ac, t*seconds_per_mtu, dt*seconds_per_mtu, stat=stat, errmsg=errmsg)
      call check(stat, "atmocorrect_step: "//errmsg)
      corr_acc = corr_acc + (x(1:nloc) - xbefore)/dt
#else
      if (t < 0.0_dp) xbefore = 0.0_dp
#endif
   end subroutine coupling_step

   subroutine coupling_finalize()
#ifdef WITH_ATMOCORRECT
      call atmocorrect_finalize(ac, stat=stat, errmsg=errmsg)
      call check(stat, "atmocorrect_finalize: "//errmsg)
#endif
   end subroutine coupling_finalize

   ! ------------------------------------------------------------- helpers
   subroutine check(st, em)
      integer, intent(in) :: st
      character(len=*), intent(in) :: em
      if (st /= 0) call fail(trim(em))
   end subroutine check

   subroutine fail(em)
      character(len=*), intent(in) :: em
      call report_failure("l96_model", rank, nprocs, em)
   end subroutine fail

end program l96_model
