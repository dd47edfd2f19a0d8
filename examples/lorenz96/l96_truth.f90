!> l96_truth: the two-scale Lorenz-96 system (Lorenz 1996; Wilks 2005), the
!> "nature run" that plays ERA5's role in the twin experiment.
!>
!>   dX_k/dt   = -X_{k-1} (X_{k-2} - X_{k+1}) - X_k + F - (h c / b) sum_j Y_{j,k}
!>   dY_{j,k}/dt = -c b Y_{j+1,k} (Y_{j+2,k} - Y_{j-1,k}) - c Y_{j,k} + (h c / b) X_k
!>
!> k = 1..K on a periodic ring; Y is one periodic ring of K*J values
!> (Y_{J+1,k} = Y_{1,k+1}). Classical RK4 at dt (default 0.001 MTU).
!> The ring is split over MPI ranks in contiguous blocks of sites (a site =
!> one X and its J Ys); halos by MPI_Sendrecv. Every value is computed by
!> the same operations in the same order on any number of ranks, so the
!> output is bitwise independent of the rank count.
!>
!> Run with --help for the arguments.
program l96_truth
   use mpi_f08
   use l96_kinds
   use l96_args
   use l96_ring
   use l96_ncio
   use l96_report, only: timestamp, report_failure
   implicit none

   type(args_t) :: args
   type(ring_t) :: ring
   type(ncw_t) :: out
   integer :: stat, rank, nprocs
   character(len=msg_len) :: errmsg

   ! parameters
   integer :: K, J, seed, nbuf
   real(dp) :: F, h, b, c, dt, spinup, length, out_every, perturb
   logical :: write_y
   character(len=:), allocatable :: output

   ! state: x(-1:nloc+1) and y(0:ny+2) with halos; stage copies and tendencies
   real(dp), allocatable :: x(:), y(:), xs(:), ys(:)
   real(dp), allocatable :: kx(:, :), ky(:, :)
   real(dp) :: to_left(3), to_right(3), from_left(3), from_right(3)
   integer :: nloc, ny, nspin, nsteps, stride, n, ivx, ivy, next_report
   integer(i8) :: c0, c1, crate
   real(dp) :: hcb, cb, elapsed

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
   call args_get_int(args, "K", K, 8, stat, errmsg)
   call args_get_int(args, "J", J, 32, stat, errmsg)
   call args_get_real(args, "F", F, 18.0_dp, stat, errmsg)
   call args_get_real(args, "h", h, 1.0_dp, stat, errmsg)
   call args_get_real(args, "b", b, 10.0_dp, stat, errmsg)
   call args_get_real(args, "c", c, 10.0_dp, stat, errmsg)
   call args_get_real(args, "dt", dt, 0.001_dp, stat, errmsg)
   call args_get_real(args, "spinup", spinup, 5.0_dp, stat, errmsg)
   call args_get_real(args, "length", length, 10.0_dp, stat, errmsg)
   call args_get_real(args, "out_every", out_every, 0.005_dp, stat, errmsg)
   call args_get_int(args, "seed", seed, 1, stat, errmsg)
   call args_get_real(args, "perturb", perturb, 1.0_dp, stat, errmsg)
   call args_get_flag(args, "write_y", write_y, .false., stat, errmsg)
   call args_get_int(args, "buffer", nbuf, 2000, stat, errmsg)
   call args_get_str(args, "output", output, "l96_truth.nc")
   call args_unused(args, stat, errmsg)
   call check(stat, errmsg)

   if (K < 4) call fail("K must be at least 4")
   if (J < 2) call fail("J must be at least 2")
   if (abs(b) < tiny(b)) call fail("b must not be 0")
   if (dt <= 0.0_dp) call fail("dt must be positive")
   if (spinup < 0.0_dp .or. length < 0.0_dp) call fail("spinup and length must not be negative")
   if (nbuf < 1) call fail("buffer must be at least 1")
   nspin = nint(spinup/dt)
   nsteps = nint(length/dt)
   stride = nint(out_every/dt)
   if (stride < 1 .or. abs(stride*dt - out_every) > 1.0e-9_dp*max(1.0_dp, out_every)) &
      call fail("out_every must be a positive multiple of dt")
   if (abs(nsteps*dt - length) > 1.0e-9_dp*max(1.0_dp, length)) call fail("length must be a multiple of dt")
   if (modulo(nsteps, stride) /= 0) call fail("length must be a multiple of out_every")

   call ring_init(ring, MPI_COMM_WORLD, K, 2, stat, errmsg)
   call check(stat, errmsg)
   nloc = ring%nloc
   ny = nloc*J
   hcb = h*c/b
   cb = c*b

   allocate (x(-1:nloc + 1), xs(-1:nloc + 1), y(0:ny + 2), ys(0:ny + 2))
   allocate (kx(nloc, 4), ky(ny, 4))
   call initial_state()

   ! output file
   call ncw_create(out, ring, output, merge(J, 0, write_y), nbuf, stat, errmsg)
   call check(stat, errmsg)
   call ncw_def_field(out, "X", "Lorenz-96 slow variable X", "1", 1, ivx, stat, errmsg)
   if (write_y) call ncw_def_field(out, "Y", "Lorenz-96 fast variable Y", "1", J, ivy, stat, errmsg)
   call ncw_att(out, "title", "Two-scale Lorenz-96 truth run (Lorenz 1996; Wilks 2005)", stat, errmsg)
   call ncw_att(out, "history", timestamp()//": "//args_cmdline(args), stat, errmsg)
   call ncw_att(out, "source", "atmocorrect examples/lorenz96/l96_truth.f90: two-scale Lorenz-96, RK4", stat, errmsg)
   call ncw_att(out, "institution", "atmocorrect example", stat, errmsg)
   call ncw_att(out, "K", K, stat, errmsg)
   call ncw_att(out, "J", J, stat, errmsg)
   call ncw_att(out, "F", F, stat, errmsg)
   call ncw_att(out, "h", h, stat, errmsg)
   call ncw_att(out, "b", b, stat, errmsg)
   call ncw_att(out, "c", c, stat, errmsg)
   call ncw_att(out, "dt", dt, stat, errmsg)
   call ncw_att(out, "dt_units", "MTU", stat, errmsg)
   call ncw_att(out, "output_interval_mtu", out_every, stat, errmsg)
   call ncw_att(out, "spinup_mtu", spinup, stat, errmsg)
   call ncw_att(out, "seed", seed, stat, errmsg)
   call ncw_att(out, "perturb", perturb, stat, errmsg)
   call ncw_att(out, "time_origin", "time 0 is the end of the spin-up", stat, errmsg)
   call ncw_enddef(out, stat, errmsg)
   call check(stat, errmsg)

   call system_clock(c0, crate)
   do n = 1, nspin
      call rk4_step()
   end do

   if (rank == 0) write (*, '(a,i0,a,i0,a,i0,a)') "l96_truth: K=", K, " J=", J, " length="//fmt(length, 3)// &
      " MTU on ", nprocs, " rank(s) -> "//output
   next_report = max(1, nsteps/10)
   call emit(0)
   do n = 1, nsteps
      call rk4_step()
      if (modulo(n, stride) == 0) call emit(n)
      if (rank == 0 .and. n == next_report .and. nsteps >= 100000) then
         write (*, '(a,i3,a)') "l96_truth: ", nint(100.0_dp*n/nsteps), "%"
         flush (6)
         next_report = next_report + max(1, nsteps/10)
      end if
   end do
   call ncw_close(out, stat, errmsg)
   call check(stat, errmsg)
   call system_clock(c1)
   elapsed = real(c1 - c0, dp)/real(crate, dp)
   if (rank == 0) write (*, '(a)') "l96_truth: done in "//fmt(elapsed, 2)//" s ("// &
      fmt((spinup + length)/max(elapsed, 1.0e-9_dp), 1)//" MTU/s)"

   call MPI_Finalize()

contains

   subroutine usage()
      write (*, '(a)') &
         "usage: mpirun -np N l96_truth [key=value ...]", &
         "", &
         "Two-scale Lorenz-96 truth run (RK4). Arguments (defaults in brackets):", &
         "  K=8            number of slow variables X (ring split over ranks; >= 2 per rank)", &
         "  J=32           fast variables Y per X", &
         "  F=18 h=1 b=10 c=10   forcing and coupling parameters", &
         "  dt=0.001       RK4 time step, MTU", &
         "  spinup=5       spin-up, MTU, discarded; time 0 of the output is its end", &
         "  length=10      length of the output run, MTU", &
         "  out_every=0.005  output interval, MTU (multiple of dt)", &
         "  seed=1         seed of the initial perturbation (rank-count independent)", &
         "  perturb=1      initial X_k = perturb*(2u-1), Y = 0.1*perturb*(2u-1), u uniform", &
         "  write_y=0      1: also write Y(time, k, j) (large)", &
         "  buffer=2000    output records buffered between writes", &
         "  output=l96_truth.nc   netCDF file (written as output.tmp, renamed at the end)", &
         "", &
         "Time convention: 1 MTU = 5 days; time is in days since 2000-01-01 00:00:00", &
         "(proleptic_gregorian)."
   end subroutine usage

   !> Portable, rank-independent initial state: one Park-Miller sequence over
   !> all K + K*J global values, each rank keeping its own block.
   subroutine initial_state()
      integer(i8), parameter :: m = 2147483647_i8, a = 48271_i8
      integer(i8) :: s
      integer :: i, g
      real(dp) :: u
      s = modulo(int(seed, i8), m - 1_i8) + 1_i8
      do i = 1, 10
         s = modulo(a*s, m)
      end do
      do g = 1, K
         s = modulo(a*s, m)
         u = real(s, dp)/real(m, dp)
         if (g > ring%koff .and. g <= ring%koff + nloc) x(g - ring%koff) = perturb*(2.0_dp*u - 1.0_dp)
      end do
      do g = 1, K*J
         s = modulo(a*s, m)
         u = real(s, dp)/real(m, dp)
         if (g > ring%koff*J .and. g <= (ring%koff + nloc)*J) &
            y(g - ring%koff*J) = 0.1_dp*perturb*(2.0_dp*u - 1.0_dp)
      end do
   end subroutine initial_state

   !> Fill the halos of the stage state xs, ys.
   subroutine halo()
      to_right = [xs(nloc - 1), xs(nloc), ys(ny)]
      to_left = [xs(1), ys(1), ys(2)]
      call ring_exchange(ring, to_left, to_right, from_left, from_right)
      xs(-1) = from_left(1)
      xs(0) = from_left(2)
      ys(0) = from_left(3)
      xs(nloc + 1) = from_right(1)
      ys(ny + 1) = from_right(2)
      ys(ny + 2) = from_right(3)
   end subroutine halo

   !> Tendencies of the stage state (halos filled) into kx(:, s), ky(:, s).
   subroutine tendency(s)
      integer, intent(in) :: s
      integer :: kl, jj, i
      real(dp) :: sumy, xk
      do kl = 1, nloc
         i = (kl - 1)*J
         sumy = 0.0_dp
         do jj = 1, J
            sumy = sumy + ys(i + jj)
         end do
         kx(kl, s) = -xs(kl - 1)*(xs(kl - 2) - xs(kl + 1)) - xs(kl) + F - hcb*sumy
         xk = hcb*xs(kl)
         do jj = 1, J
            ky(i + jj, s) = -cb*ys(i + jj + 1)*(ys(i + jj + 2) - ys(i + jj - 1)) - c*ys(i + jj) + xk
         end do
      end do
   end subroutine tendency

   subroutine rk4_step()
      real(dp) :: h2, h6
      h2 = 0.5_dp*dt
      h6 = dt/6.0_dp
      xs(1:nloc) = x(1:nloc)
      ys(1:ny) = y(1:ny)
      call halo()
      call tendency(1)
      xs(1:nloc) = x(1:nloc) + h2*kx(:, 1)
      ys(1:ny) = y(1:ny) + h2*ky(:, 1)
      call halo()
      call tendency(2)
      xs(1:nloc) = x(1:nloc) + h2*kx(:, 2)
      ys(1:ny) = y(1:ny) + h2*ky(:, 2)
      call halo()
      call tendency(3)
      xs(1:nloc) = x(1:nloc) + dt*kx(:, 3)
      ys(1:ny) = y(1:ny) + dt*ky(:, 3)
      call halo()
      call tendency(4)
      x(1:nloc) = x(1:nloc) + h6*(kx(:, 1) + 2.0_dp*kx(:, 2) + 2.0_dp*kx(:, 3) + kx(:, 4))
      y(1:ny) = y(1:ny) + h6*(ky(:, 1) + 2.0_dp*ky(:, 2) + 2.0_dp*ky(:, 3) + ky(:, 4))
   end subroutine rk4_step

   subroutine emit(step)
      integer, intent(in) :: step
      integer :: st
      character(len=msg_len) :: em
      st = 0
      em = ""
      if (.not. all(abs(x(1:nloc)) < 1.0e10_dp)) then
         em = "the state is not finite at t="//fmt(step*dt)//" MTU (blow-up; try a smaller dt)"
         call fail(trim(em))
      end if
      call ncw_stage(out, ivx, x(1:nloc))
      if (write_y) call ncw_stage(out, ivy, y(1:ny))
      call ncw_commit(out, step*dt, st, em)
      call check(st, em)
   end subroutine emit

   subroutine check(st, em)
      integer, intent(in) :: st
      character(len=*), intent(in) :: em
      if (st /= 0) call fail(trim(em))
   end subroutine check

   subroutine fail(em)
      character(len=*), intent(in) :: em
      call report_failure("l96_truth", rank, nprocs, em)
   end subroutine fail

end program l96_truth
