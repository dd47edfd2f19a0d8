!> Example 01: a gridded Fortran model coupled to atmocorrect under MPI.
!>
!> The domain (lon x lat x lev) is split in 2-D blocks over the ranks; each rank keeps halo
!> points around its block and registers only the interior (array sections, no copies).
!> Every step: halo exchange, physics, then atmocorrect_step nudges t, q and ps in place.
!>
!> usage: mpirun -np N gridded_host ckpt=DIR [nx=32 ny=16 nz=5 steps=10 dt=600 physics=1
!>                                          mode=apply fields=t,q,ps out=PREFIX]
!> Writes PREFIX.rankR.txt (the interior of every field) when out= is given, and prints
!> ADDRESS and HALO lines that the tests read.
program gridded_host
  use mpi
  use atmocorrect
  use gridded_model
  use gridded_halo, only: exchange_halo
  implicit none

  type(atmocorrect_t) :: ac
  character(len=512) :: ckpt = "", out = "", mode = "", fields = "t,q,ps", arg
  character(len=ATMOCORRECT_MSG_LEN) :: msg
  integer :: nx = 32, ny = 16, nlev = 5, steps = 10, physics = 1
  real(dp) :: dt = 600.0_dp, time
  integer :: ierr, stat, rank, nprocs, cart, dims(2), coords(2), step, i
  logical :: periods(2) = [.true., .true.], halo_ok
  integer(kind=8) :: address
  real(dp), allocatable :: t_before(:, :, :)
  real(sp), allocatable :: q_before(:, :, :)
  real(dp), allocatable :: ps_before(:, :)

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nprocs, ierr)
  do i = 1, command_argument_count()
    call get_command_argument(i, arg)
    call parse(trim(arg))
  end do
  if (len_trim(ckpt) == 0) then
    if (rank == 0) write (*, '(a)') "usage: gridded_host ckpt=DIR [nx= ny= nz= steps= dt= physics=0|1 mode= out=]"
    call MPI_Abort(MPI_COMM_WORLD, 2, ierr)
  end if

  dims = 0
  call MPI_Dims_create(nprocs, 2, dims, ierr)
  call MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, .false., cart, ierr)
  call MPI_Cart_coords(cart, rank, 2, coords, ierr)
  call model_init(block_size(nx, dims(1), coords(1)), block_size(ny, dims(2), coords(2)), nlev, &
                  nx, ny, block_start(nx, dims(1), coords(1)), block_start(ny, dims(2), coords(2)))

  if (len_trim(mode) > 0) then
    call atmocorrect_init(ac, trim(ckpt), cart, stat=stat, errmsg=msg, mode=trim(mode))
  else
    call atmocorrect_init(ac, trim(ckpt), cart, stat=stat, errmsg=msg)
  end if
  call check("init")
  call atmocorrect_set_grid(ac, [nx, ny, nlev], [i0, j0, 0], stat=stat, errmsg=msg)
  call check("set_grid")
  if (wanted("t")) then
    call atmocorrect_add_field(ac, "t", t(1:snx, 1:sny, :), units="K", stat=stat, errmsg=msg)
    call check("add_field t")
  end if
  if (wanted("q")) then
    call atmocorrect_add_field(ac, "q", q(1:snx, 1:sny, :), units="kg kg-1", stat=stat, errmsg=msg)
    call check("add_field q")
  end if
  if (wanted("ps")) then
    call atmocorrect_add_field(ac, "ps", ps(1:snx, 1:sny), units="Pa", stat=stat, errmsg=msg)
    call check("add_field ps")
  end if

  call atmocorrect_field_address(ac, "t", address, stat=stat, errmsg=msg)
  call check("field_address")
  write (*, '(a,i0,a,i0,a,i0)') "ADDRESS rank=", rank, " library=", address, " host=", loc(t(1, 1, 1))

  halo_ok = .true.
  time = 0.0_dp
  do step = 1, steps
    call exchange_halo(cart)
    if (physics /= 0) call model_physics_step(dt)
    time = time + dt
    t_before = t; q_before = q; ps_before = ps
    call atmocorrect_step(ac, time, dt, stat=stat, errmsg=msg)
    call check("step")
    halo_ok = halo_ok .and. halo_equal()
  end do
  write (*, '(a,i0,a,l1)') "HALO rank=", rank, " untouched=", halo_ok
  if (trim(mode) == "diagnose" .and. wanted("t")) call report_increment()

  if (len_trim(out) > 0) call write_block(trim(out))
  call atmocorrect_finalize(ac, stat=stat, errmsg=msg)
  call check("finalize")
  call MPI_Finalize(ierr)

contains


  subroutine parse(kv)
    character(len=*), intent(in) :: kv
    integer :: eq
    eq = index(kv, "=")
    select case (kv(1:max(eq - 1, 0)))
    case ("ckpt"); ckpt = kv(eq + 1:)
    case ("out"); out = kv(eq + 1:)
    case ("mode"); mode = kv(eq + 1:)
    case ("fields"); fields = kv(eq + 1:)
    case ("nx"); read (kv(eq + 1:), *) nx
    case ("ny"); read (kv(eq + 1:), *) ny
    case ("nz"); read (kv(eq + 1:), *) nlev
    case ("steps"); read (kv(eq + 1:), *) steps
    case ("dt"); read (kv(eq + 1:), *) dt
    case ("physics"); read (kv(eq + 1:), *) physics
    case default
      if (rank == 0) write (*, '(2a)') "gridded_host: unknown argument ", kv
      call MPI_Abort(MPI_COMM_WORLD, 2, ierr)
    end select
  end subroutine parse

  !> The last increment of t (diagnose mode records it without applying it), summed globally.
  subroutine report_increment()
    real(dp), allocatable :: inc(:, :, :)
    real(dp) :: local_sum, total
    allocate (inc(snx, sny, nlev))
    call atmocorrect_get_increment(ac, "t", inc, stat=stat, errmsg=msg)
    call check("get_increment")
    local_sum = sum(inc)
    call MPI_Allreduce(local_sum, total, 1, MPI_DOUBLE_PRECISION, MPI_SUM, MPI_COMM_WORLD, ierr)
    if (rank == 0) write (*, '(a,es25.17)') "INCREMENT t sum=", total
  end subroutine report_increment

  logical function wanted(name)
    character(len=*), intent(in) :: name
    wanted = index("," // trim(fields) // ",", "," // name // ",") > 0
  end function wanted

  subroutine check(where)
    character(len=*), intent(in) :: where
    if (stat /= ATMOCORRECT_SUCCESS) then
      write (*, '(a,i0,3a,i0,2a)') "ERROR rank=", rank, " call=", where, " stat=", stat, " msg=", trim(msg)
      call MPI_Finalize(ierr)
      stop 3
    end if
  end subroutine check

  logical function halo_equal()
    halo_equal = all(t(0, :, :) == t_before(0, :, :)) .and. all(t(snx + 1, :, :) == t_before(snx + 1, :, :)) &
                 .and. all(t(:, 0, :) == t_before(:, 0, :)) .and. all(t(:, sny + 1, :) == t_before(:, sny + 1, :)) &
                 .and. all(q(0, :, :) == q_before(0, :, :)) .and. all(q(:, sny + 1, :) == q_before(:, sny + 1, :)) &
                 .and. all(ps(0, :) == ps_before(0, :)) .and. all(ps(:, sny + 1) == ps_before(:, sny + 1))
  end function halo_equal

  integer function block_size(n, parts, index)
    integer, intent(in) :: n, parts, index
    block_size = n / parts
    if (index < mod(n, parts)) block_size = block_size + 1
  end function block_size

  integer function block_start(n, parts, index)
    integer, intent(in) :: n, parts, index
    block_start = index * (n / parts) + min(index, mod(n, parts))
  end function block_start

  subroutine write_block(prefix)
    character(len=*), intent(in) :: prefix
    character(len=600) :: path
    integer :: unit, ii, jj, kk
    write (path, '(a,a,i0,a)') prefix, ".rank", rank, ".txt"
    open (newunit=unit, file=trim(path), status="replace", action="write")
    write (unit, '(a,6(1x,i0))') "block", i0, j0, snx, sny, nlev, nx
    do kk = 1, nlev
      do jj = 1, sny
        do ii = 1, snx
          write (unit, '(a,3(1x,i0),2(1x,es25.17))') "tq", i0 + ii - 1, j0 + jj - 1, kk - 1, t(ii, jj, kk), real(q(ii, jj, kk), dp)
        end do
      end do
    end do
    do jj = 1, sny
      do ii = 1, snx
        write (unit, '(a,2(1x,i0),1x,es25.17)') "ps", i0 + ii - 1, j0 + jj - 1, ps(ii, jj)
      end do
    end do
    close (unit)
  end subroutine write_block

end program gridded_host
